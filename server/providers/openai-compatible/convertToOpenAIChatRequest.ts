import type { ProviderSpec } from '../registry';
import type { UpstreamRequest } from '../types';
import type { OpenAIChatRequestBody } from './openaiChatApi';

export function convertToOpenAIChatRequest(req: UpstreamRequest, spec: ProviderSpec): OpenAIChatRequestBody {
  const body: OpenAIChatRequestBody = {
    model: req.model,
    messages: mergeConsecutiveRoles(req.messages.map((m) => ({ role: m.role, content: m.content }))),
    stream: req.delivery !== 'whole',
  };
  // A one-piece answer always carries its usage; only a stream must ask for it.
  if (spec.streamUsageOption && body.stream) body.stream_options = { include_usage: true };
  if (req.maxTokens !== undefined) body[spec.maxTokensField ?? 'max_tokens'] = req.maxTokens;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  return body;
}

/**
 * Perplexity (and some others) reject two messages of one role in a row; joining them keeps the
 * text and is what the model would have read anyway.
 */
function mergeConsecutiveRoles(messages: OpenAIChatRequestBody['messages']): OpenAIChatRequestBody['messages'] {
  const out: OpenAIChatRequestBody['messages'] = [];
  for (const m of messages) {
    const last = out[out.length - 1];
    if (last && last.role === m.role) last.content += '\n\n' + m.content;
    else out.push({ ...m });
  }
  return out;
}
