import type { ChatMessage, ToolCall, UserContentPart } from '../../../shared';
import type { KeyrackMessage, KeyrackToolCall } from './ChatController';

/**
 * A conversation as the UI holds it, as the gateway takes it. A tool call's result lives on the
 * call (so a bubble shows call and result together); here it becomes the `tool` message that
 * follows its assistant message. Calls without an outcome (cut off while `partial`, or still
 * waiting) are left out with their results: a provider refuses a call nobody answered.
 */
export function toRequestMessages(messages: readonly KeyrackMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const message of messages) {
    switch (message.role) {
      case 'system':
      case 'developer':
        if (message.content !== '') out.push({ role: message.role, content: message.content });
        break;
      case 'user': {
        const images = message.images ?? [];
        if (images.length === 0) {
          if (message.content !== '') out.push({ role: 'user', content: message.content });
          break;
        }
        const parts: UserContentPart[] = message.content === '' ? [] : [{ type: 'text', text: message.content }];
        for (const url of images) parts.push({ type: 'image', url });
        out.push({ role: 'user', content: parts });
        break;
      }
      case 'assistant': {
        const answered = (message.toolCalls ?? []).filter((call) => call.state === 'result' || call.state === 'error');
        if (message.content === '' && answered.length === 0) break;
        const toolCalls = answered.map(({ id, name, argumentsText }): ToolCall => ({ id, name, arguments: argumentsText }));
        out.push({ role: 'assistant', content: message.content, ...(toolCalls.length > 0 ? { toolCalls } : {}) });
        for (const call of answered) out.push({ role: 'tool', toolCallId: call.id, content: toolResultText(call) });
        break;
      }
    }
  }
  return out;
}

/** A result as the model reads it: text as is, anything else as JSON; an error as `{"error": ...}`. */
export function toolResultText(call: KeyrackToolCall): string {
  if (call.state === 'error') return JSON.stringify({ error: call.error ?? 'the tool failed' });
  return typeof call.result === 'string' ? call.result : (JSON.stringify(call.result ?? null) ?? 'null');
}
