import type { TokenUsage } from '../../../shared';
import { ProviderError } from '../../providers/ProviderError';
import { readSseEvents } from '../../providers/http/sseEvents';
import { usageOfResponse } from './responsesWire';

/**
 * The lifecycle events that carry the whole `response` object, whose `model` is the upstream's
 * id and is set to the catalog's; the last three end the answer and carry its usage.
 */
const WITH_RESPONSE = new Set(['response.created', 'response.in_progress', 'response.queued', 'response.completed', 'response.incomplete', 'response.failed']);
const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

export interface RelayedStream {
  /** From the terminal event's `response.usage`; null when it had none. */
  usage: TokenUsage | null;
}

export interface RelayTarget {
  /** Writes one SSE frame; a promise back holds the upstream read (the client's socket is full). */
  write(frame: string): void | Promise<void>;
  /** UTF-8 bytes of streamed text (output_text deltas), for billing a cut answer. */
  produced(bytes: number): void;
}

/**
 * Relays a provider's Responses API stream to the client as it comes (issue 21): each event
 * with its name and its data as sent, except the events carrying the `response` object, whose
 * `model` becomes `model` (the catalog's id, as the client asked). Nothing else is parsed on the
 * way: a delta is re-framed from the parser's fields, its data untouched. Resolves at the
 * terminal event (response.completed / incomplete / failed) with its usage; a stream that ends
 * before one was cut, and is thrown as a transient ProviderError (the answer had started: the
 * pooled call bills what was produced and never retries it).
 */
export async function relayResponsesStream(body: unknown, apiKey: string, model: string, target: RelayTarget): Promise<RelayedStream> {
  let usage: TokenUsage | null = null;
  let finished = false;
  await readSseEvents(
    body,
    apiKey,
    // readSseEvents hands over data only; the event name is also the data's `type` on this wire.
    (data) => {
      const type = typeOf(data);
      if (type === 'response.output_text.delta') target.produced(deltaBytes(data));
      if (type === null || !WITH_RESPONSE.has(type)) return target.write(`event: ${type ?? 'message'}\ndata: ${data}\n\n`);
      const event = JSON.parse(data) as { response?: Record<string, unknown> };
      if (event.response && typeof event.response === 'object') event.response.model = model;
      if (TERMINAL.has(type)) {
        finished = true;
        usage = usageOfResponse(event.response);
      }
      return target.write(`event: ${type}\ndata: ${JSON.stringify(event)}\n\n`);
    },
    () => finished,
  );
  if (!finished) throw new ProviderError({ kind: 'transient', message: 'the Responses stream ended before its last event', providerCode: 'stream_cut' });
  return { usage };
}

const TYPE_PREFIX = '{"type":"';

/**
 * An event's `type`. OpenAI writes it first (`{"type":"response.output_text.delta",...`), read
 * there without parsing the event; anywhere else, the event is parsed for it.
 */
function typeOf(data: string): string | null {
  if (data.startsWith(TYPE_PREFIX)) {
    const end = data.indexOf('"', TYPE_PREFIX.length);
    if (end > 0) return data.slice(TYPE_PREFIX.length, end);
  }
  try {
    const parsed = JSON.parse(data) as { type?: unknown };
    return typeof parsed?.type === 'string' ? parsed.type : null;
  } catch {
    return null;
  }
}

const DELTA_FIELD = '"delta":"';

/**
 * A text delta's size in UTF-8 bytes, for a cut answer's bill, read off the JSON string as sent
 * (its escapes count a byte or so more than the text they stand for) without parsing the event.
 */
function deltaBytes(data: string): number {
  const start = data.indexOf(DELTA_FIELD);
  if (start < 0) return 0;
  const from = start + DELTA_FIELD.length;
  let i = from;
  while (i < data.length && data.charCodeAt(i) !== 0x22 /* " */) i += data.charCodeAt(i) === 0x5c /* \ */ ? 2 : 1;
  return Buffer.byteLength(data.slice(from, i), 'utf8');
}
