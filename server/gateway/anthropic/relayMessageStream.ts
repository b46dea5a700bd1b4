import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { KeyEchoGuard } from '../../providers/http/KeyEchoGuard';
import { ProviderError } from '../../providers/ProviderError';
import { readUpstreamBody } from '../../providers/http/UpstreamHttp';
import { anthropicErrorSchema, type AnthropicUsage } from '../../providers/anthropic/anthropicMessagesApi';
import { classifyAnthropicStreamError } from '../../providers/anthropic/classifyAnthropicError';
import type { StreamedResponse } from '../../streams/StreamedResponse';
import { mergeUsage } from './anthropicUsage';

/**
 * What a relayed stream has seen so far: the usage Anthropic reported (message_start's input
 * side, message_delta's cumulative output side), whether it ended properly, and how much delta
 * text went by (the estimate for an answer cut before its usage).
 */
export interface StreamRelayState {
  usage: AnthropicUsage;
  /** message_stop was relayed. */
  stopped: boolean;
  /** An `error` event of Anthropic's own was relayed to the client (the stream ends with it). */
  errorRelayed: boolean;
  /** That event's `error` object, classified once the stream ends (the pool learns of an overloaded key). */
  relayedError?: unknown;
  /**
   * Characters of content_block_delta data relayed, less a text delta's JSON framing: what a
   * stream cut before its usage is billed for (an estimate: escapes and tool JSON count as text).
   */
  deltaChars: number;
}

export interface StreamRelayOptions {
  /** The upstream response body (a 2xx event stream). */
  body: unknown;
  /** Scrubbed out of any error. */
  apiKey: string;
  /** The model as the client named it: message_start says it. */
  clientModel: string;
  stream: StreamedResponse;
  /**
   * Called once, when the first event is known to be an answer's (not an error): the status and
   * headers go out then. Before it, a failure is retried on another key; after it, never.
   */
  open(): void;
  state: StreamRelayState;
}

/** The most held back while waiting for the first event (message_start is a few hundred bytes). */
const MAX_HELD_CHARS = 1024 * 1024;
const EVENT_END = /\r\n\r\n|\n\n|\r\r/g;
/** The JSON around a text delta's text: not output. */
const DELTA_FRAMING = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}'.length;

/**
 * Relays Anthropic's event stream to the client as Anthropic sent it (issue 21). The events are
 * held back only until the first one is complete: an `error` there (overloaded_error) is thrown
 * as a ProviderError, so another key may serve; message_start is passed on with `model` set to
 * the client's name for it. From then on each network read is decoded once, written through
 * unchanged, and the same text fed to an SSE parser that reads usage off message_start,
 * message_delta and message_stop. Deltas, nearly every event, are not JSON-parsed: their event
 * name says what they are. Resolves when the body ends; rejects with a ProviderError when it
 * broke off (a transient one once the stream is open: the caller ends the client's stream).
 */
export async function relayMessageStream({ body, apiKey, clientModel, stream, open, state }: StreamRelayOptions): Promise<void> {
  const decoder = new TextDecoder();
  const parser = createParser({ onEvent: (event) => readEvent(event, state) });
  let held = '';
  let blockStart = 0;
  let opened = false;
  // Relayed as Anthropic wrote it, but never with the key in it (an echo in an error event).
  const guard = new KeyEchoGuard(apiKey);

  /** While held: looks for the first event; once found, opens the stream and writes everything held. */
  const hold = (text: string): void | Promise<void> => {
    held += text;
    EVENT_END.lastIndex = blockStart;
    for (let end = EVENT_END.exec(held); end; end = EVENT_END.exec(held)) {
      const first = parseBlock(held.slice(blockStart, end.index));
      const after = end.index + end[0].length;
      if (!first) {
        // A comment or an empty block before the first event: kept as it is.
        blockStart = after;
        EVENT_END.lastIndex = after;
        continue;
      }
      const head = firstEventText(first, clientModel, apiKey, state);
      const rest = held.slice(after);
      const out = held.slice(0, blockStart) + head + rest;
      held = '';
      opened = true;
      open();
      parser.feed(rest);
      return stream.write(guard.pass(out)) ? undefined : stream.drained();
    }
    if (held.length > MAX_HELD_CHARS) throw new ProviderError({ kind: 'transient', message: 'anthropic: no event in the first MiB of the stream' });
    return undefined;
  };

  await readUpstreamBody(
    body,
    apiKey,
    (chunk) => {
      const text = decoder.decode(chunk, { stream: true });
      if (!opened) return hold(text);
      parser.feed(text);
      return stream.write(guard.pass(text)) ? undefined : stream.drained();
    },
    () => false,
  );
  const tail = decoder.decode();
  if (!opened) {
    if (tail) hold(tail);
    if (!opened) throw new ProviderError({ kind: 'transient', message: 'anthropic: the stream ended before its first event', providerCode: 'truncated' });
  } else if (tail) {
    parser.feed(tail);
    stream.write(guard.pass(tail));
  }
  const heldBack = guard.end();
  if (heldBack) stream.write(heldBack);
  // Relayed already; thrown so the attempt is reported against the key as what it was.
  if (state.errorRelayed) throw errorOf(state.relayedError, apiKey);
  if (!state.stopped) {
    throw new ProviderError({ kind: 'transient', message: 'anthropic: stream ended before message_stop', providerCode: 'truncated' });
  }
}

/** The one event of a block of SSE lines, or null for a block of comments. */
function parseBlock(block: string): EventSourceMessage | null {
  let found: EventSourceMessage | null = null;
  const parser = createParser({ onEvent: (event) => void (found ??= event) });
  parser.feed(`${block}\n\n`);
  return found;
}

/**
 * The first event's text as the client gets it. An `error` first is thrown (nothing was sent:
 * another key may answer); message_start carries the client's model name; anything else goes
 * out as Anthropic wrote it.
 */
function firstEventText(event: EventSourceMessage, clientModel: string, apiKey: string, state: StreamRelayState): string {
  const data = parseData(event.data);
  const type = event.event ?? (data as { type?: unknown } | undefined)?.type;
  if (type === 'error') throw errorOf(data, apiKey);
  if (type !== 'message_start' || !isObject(data) || !isObject(data.message)) {
    readEvent(event, state);
    return `${event.event ? `event: ${event.event}\n` : ''}data: ${event.data}\n\n`;
  }
  mergeUsage(state.usage, data.message.usage);
  data.message.model = clientModel;
  return `event: message_start\ndata: ${JSON.stringify(data)}\n\n`;
}

/** What the usage tap reads of each relayed event. Anthropic names every event; the name alone decides most. */
function readEvent(event: EventSourceMessage, state: StreamRelayState): void {
  switch (event.event) {
    case 'content_block_delta':
      state.deltaChars += Math.max(0, event.data.length - DELTA_FRAMING);
      return;
    case 'ping':
    case 'content_block_start':
    case 'content_block_stop':
      return;
    case 'message_stop':
      state.stopped = true;
      return;
    default:
      break;
  }
  const data = parseData(event.data);
  if (!isObject(data)) return;
  switch (event.event ?? data.type) {
    case 'message_start':
      if (isObject(data.message)) mergeUsage(state.usage, data.message.usage);
      return;
    case 'message_delta':
      mergeUsage(state.usage, data.usage);
      return;
    case 'message_stop':
      state.stopped = true;
      return;
    case 'error':
      state.errorRelayed = true;
      state.relayedError = data;
      return;
    case 'content_block_delta':
      state.deltaChars += Math.max(0, event.data.length - DELTA_FRAMING);
      return;
    default:
      return;
  }
}

function errorOf(data: unknown, apiKey: string): ProviderError {
  const parsed = anthropicErrorSchema.safeParse(isObject(data) ? data.error : undefined);
  return classifyAnthropicStreamError(parsed.success ? parsed.data : { type: 'api_error', message: 'unreadable error event' }, apiKey);
}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The error a relayed stream ended with, as the client's error event: the stream's last word when it broke off. */
export function streamErrorEvent(type: string, message: string): string {
  return `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type, message } })}\n\n`;
}
