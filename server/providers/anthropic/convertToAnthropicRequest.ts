import type { UpstreamRequest } from '../types';
import type { AnthropicMessagesRequestBody } from './anthropicMessagesApi';

/** Anthropic requires `max_tokens`; this is what is asked when the caller sets none. */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/**
 * System messages go into the top-level `system` field; consecutive turns of one role are joined
 * (the API wants user and assistant to alternate) and the conversation must open with a user turn.
 */
export function convertToAnthropicRequest(req: UpstreamRequest): AnthropicMessagesRequestBody {
  const system = req.messages.filter((m) => m.role === 'system').map((m) => m.content);
  const messages: AnthropicMessagesRequestBody['messages'] = [];
  for (const m of req.messages) {
    if (m.role === 'system') continue;
    const last = messages[messages.length - 1];
    if (last && last.role === m.role) last.content += '\n\n' + m.content;
    else messages.push({ role: m.role, content: m.content });
  }
  if (messages[0]?.role !== 'user') messages.unshift({ role: 'user', content: '(continue)' });
  const body: AnthropicMessagesRequestBody = {
    model: req.model,
    max_tokens: req.maxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
    messages,
    stream: req.delivery !== 'whole',
  };
  if (system.length > 0) body.system = system.join('\n\n');
  // Anthropic's temperature range is 0..1; ours (OpenAI's) is 0..2.
  if (req.temperature !== undefined) body.temperature = Math.min(1, req.temperature);
  return body;
}
