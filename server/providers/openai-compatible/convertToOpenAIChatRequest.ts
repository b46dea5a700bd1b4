import { messageText } from '../../../shared';
import type { ProviderSpec } from '../registry';
import { refuseUnsupported, type CarriedField } from '../request/refuseUnsupported';
import type { UpstreamRequest } from '../types';
import type { OpenAIChatRequestBody } from './openaiChatApi';

const CARRIED: ReadonlySet<CarriedField> = new Set(['maxTokens', 'temperature']);

export function convertToOpenAIChatRequest(req: UpstreamRequest, spec: ProviderSpec): OpenAIChatRequestBody {
  refuseUnsupported(req, spec.id, CARRIED);
  const body: OpenAIChatRequestBody = {
    model: req.model,
    // Text only until tools and images are carried (refused above); `developer` is `system` to the providers that copy OpenAI.
    messages: mergeConsecutiveRoles(req.messages.map((m) => ({ role: m.role === 'developer' ? 'system' : (m.role as 'system' | 'user' | 'assistant'), content: messageText(m) }))),
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
