import type { IncomingMessage } from 'node:http';
import { MAX_WAIT_MS } from '../../../shared/chat';

/** How long a /v1 request may wait for a key when every key is busy (issue 22), ms. */
export const MAX_WAIT_HEADER = 'x-keyrack-max-wait-ms';

/** The refusal of a bad header, in every wire's 400 (it names the header as the field). */
export const MAX_WAIT_HEADER_REFUSAL = `${MAX_WAIT_HEADER} must be a whole number of milliseconds from 0 to ${MAX_WAIT_MS}`;

/**
 * The header's value: undefined when absent, null when it is not one whole number in range.
 * Every endpoint served from the key pools reads it the same way (chat, embeddings, messages,
 * responses); the pool's `<P>_QUEUE_MAX_WAIT_MS` caps it.
 */
export function maxWaitOf(req: IncomingMessage): number | undefined | null {
  const header = req.headers[MAX_WAIT_HEADER];
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !/^\d{1,6}$/.test(header.trim())) return null;
  const ms = Number(header.trim());
  return ms <= MAX_WAIT_MS ? ms : null;
}
