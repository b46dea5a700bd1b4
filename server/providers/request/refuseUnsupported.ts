import type { ChatMessage } from '../../../shared';
import { ProviderError } from '../ProviderError';
import type { UpstreamRequest } from '../types';

/**
 * The request fields an adapter's conversion carries to its provider. Anything else the request
 * sets is refused with a bad_request naming the field, before any upstream call: a field is
 * carried or refused, never dropped (issue 20).
 */
export type CarriedField = Exclude<keyof UpstreamRequest, 'provider' | 'model' | 'messages' | 'delivery'> | 'images' | 'toolMessages';

export function refuseUnsupported(req: UpstreamRequest, provider: string, carried: ReadonlySet<CarriedField>): void {
  const field = firstUncarried(req, carried);
  if (field !== null) {
    throw new ProviderError({ kind: 'bad_request', status: 400, message: `${provider} cannot take ${field} through Keyrack`, param: field });
  }
}

function firstUncarried(req: UpstreamRequest, carried: ReadonlySet<CarriedField>): string | null {
  for (const key of Object.keys(req) as (keyof UpstreamRequest)[]) {
    if (key === 'provider' || key === 'model' || key === 'messages' || key === 'delivery' || req[key] === undefined) continue;
    if (!carried.has(key)) return key;
  }
  for (const [i, message] of req.messages.entries()) {
    if (!carried.has('toolMessages') && (message.role === 'tool' || (message.role === 'assistant' && message.toolCalls))) {
      return message.role === 'tool' ? `messages[${i}].toolCallId` : `messages[${i}].toolCalls`;
    }
    if (!carried.has('images') && hasImage(message)) return `messages[${i}].content`;
  }
  return null;
}

function hasImage(message: ChatMessage): boolean {
  return message.role === 'user' && typeof message.content !== 'string' && message.content.some((part) => part.type === 'image');
}
