import { messageText } from '../../../shared';
import { refuseUnsupported, type CarriedField } from '../request/refuseUnsupported';
import type { UpstreamRequest } from '../types';
import type { AnthropicMessagesRequestBody } from './anthropicMessagesApi';

/** Anthropic requires `max_tokens`; this is what is asked when the caller sets none. */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/**
 * System messages go into the top-level `system` field; consecutive turns of one role are joined
 * (the API wants user and assistant to alternate) and the conversation must open with a user turn.
 */
const CARRIED: ReadonlySet<CarriedField> = new Set(['maxTokens', 'temperature']);

export function convertToAnthropicRequest(req: UpstreamRequest): AnthropicMessagesRequestBody {
  refuseUnsupported(req, 'anthropic', CARRIED);
  const isInstruction = (role: string) => role === 'system' || role === 'developer';
  const system = req.messages.filter((m) => isInstruction(m.role)).map(messageText);
  const messages: AnthropicMessagesRequestBody['messages'] = [];
  for (const m of req.messages) {
    if (isInstruction(m.role)) continue;
    // Text only until tool messages are carried (refused above).
    const role = m.role === 'assistant' ? 'assistant' : 'user';
    const last = messages[messages.length - 1];
    if (last && last.role === role) last.content += '\n\n' + messageText(m);
    else messages.push({ role, content: messageText(m) });
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
