import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Agent, request } from 'undici';
import { answerWords } from '../server/mock-provider/mockAnswer';

/**
 * A small undici client for streamed answers, the same for every target, that times the first
 * text delta and checks the whole answer: every delta once, in order, nothing missing.
 */

export interface StreamResult {
  /** From sending the (first) request to the first non-empty text delta. */
  ttftMs: number;
  /** From sending the (first) request to the end of the answer. */
  totalMs: number;
  deltas: number;
  text: string;
  /** Event ids out of order or repeated (tRPC tracked events only). */
  idProblems: number;
  /** The answer ended with its terminator (`[DONE]`, or a `done` event). */
  finished: boolean;
}

/** Loopback only; enough sockets for every stream of the many-streams run at once. */
export function createBenchAgent(connections = 4_096): Agent {
  return new Agent({ connections, keepAliveTimeout: 30_000, headersTimeout: 60_000, bodyTimeout: 60_000 });
}

/** What the mock answers to `prompt` with `chunks` deltas: the text a stream must reproduce. */
export function expectedAnswer(prompt: string, chunks: number): string {
  return answerWords(prompt, chunks)
    .map((w, i) => (i === 0 ? w : ' ' + w))
    .join('');
}

/** An OpenAI-style SSE stream: the mock directly, the bare proxy, or Keyrack's /v1. */
export async function openAiStream(agent: Agent, url: string, headers: Record<string, string>, body: string, signal?: AbortSignal): Promise<StreamResult> {
  const started = performance.now();
  const res = await request(url, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json', ...headers }, body, signal });
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}: ${(await res.body.text()).slice(0, 300)}`);
  const out: StreamResult = { ttftMs: Number.NaN, totalMs: Number.NaN, deltas: 0, text: '', idProblems: 0, finished: false };
  const parser = createParser({
    onEvent(event) {
      if (event.data === '[DONE]') {
        out.finished = true;
        return;
      }
      const chunk = JSON.parse(event.data) as { choices?: { delta?: { content?: string | null } }[] };
      const content = chunk.choices?.[0]?.delta?.content;
      if (content) addDelta(out, content, started);
    },
  });
  for await (const part of res.body) parser.feed(part.toString('utf8'));
  out.totalMs = performance.now() - started;
  return out;
}

export interface TrpcTarget {
  /** http://127.0.0.1:PORT/trpc */
  trpcUrl: string;
  token: string;
}

/**
 * Keyrack's own streaming path, as the SDK drives it: `chat.start` (a mutation: POST with the
 * input as the JSON body), whose answer carries the events the stream held by then (the first
 * text, usually), then `chat.stream` as an SSE GET (httpSubscriptionLink) with the input JSON
 * in `?input=`, resuming after the last of those events. Each item is `tracked(id, event)`:
 * SSE `id:` plus the event as `data:`; the subscription's end is an SSE `return` event. The bearer token travels in a
 * header, as the SDK's eventsource fetch sends it.
 */
export async function trpcStream(agent: Agent, target: TrpcTarget, chatInput: unknown, signal?: AbortSignal): Promise<StreamResult> {
  const sentAt = performance.now();
  const auth = { authorization: `Bearer ${target.token}` };
  const startRes = await request(`${target.trpcUrl}/chat.start`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify(chatInput),
    signal,
  });
  const startText = await startRes.body.text();
  if (startRes.statusCode !== 200) throw new Error(`chat.start: HTTP ${startRes.statusCode}: ${startText.slice(0, 300)}`);
  const startAnswer = (JSON.parse(startText) as { result?: { data?: { streamId?: string; events?: { id: string; event: TrpcItem }[] } } }).result?.data;
  const streamId = startAnswer?.streamId;
  if (!streamId) throw new Error(`chat.start: no streamId in ${startText.slice(0, 300)}`);
  const out: StreamResult = { ttftMs: Number.NaN, totalMs: Number.NaN, deltas: 0, text: '', idProblems: 0, finished: false };
  let lastId = 0;
  const take = (id: string | undefined, item: TrpcItem) => {
    if (id !== undefined) {
      if (Number(id) !== lastId + 1) out.idProblems += 1;
      lastId = Number(id);
    }
    if (item.type === 'delta' && item.text) addDelta(out, item.text, sentAt);
    else if (item.type === 'done') out.finished = true;
    else if (item.type === 'error') throw new Error(`chat.stream error event: ${item.code}: ${item.message}`);
  };
  // As the SDK does: the events chat.start brought count at once, the stream resumes after them.
  for (const { id, event } of startAnswer?.events ?? []) take(id, event);
  if (out.finished) {
    out.totalMs = performance.now() - sentAt;
    return out;
  }

  const input = encodeURIComponent(JSON.stringify(lastId > 0 ? { streamId, lastEventId: String(lastId) } : { streamId }));
  const res = await request(`${target.trpcUrl}/chat.stream?input=${input}`, {
    method: 'GET',
    dispatcher: agent,
    headers: { accept: 'text/event-stream', ...auth },
    signal,
  });
  if (res.statusCode !== 200) throw new Error(`chat.stream: HTTP ${res.statusCode}: ${(await res.body.text()).slice(0, 300)}`);
  let ended = false;
  const parser = createParser({
    onEvent(event: EventSourceMessage) {
      if (event.event === 'return') {
        ended = true;
        return;
      }
      if (event.event === 'serialized-error') throw new Error(`chat.stream error: ${event.data.slice(0, 300)}`);
      if (event.event !== undefined && event.event !== 'message') return; // connected, ping
      take(event.id, JSON.parse(event.data) as TrpcItem);
    },
  });
  try {
    for await (const part of res.body) {
      parser.feed(part.toString('utf8'));
      if (ended) break;
    }
  } finally {
    res.body.destroy();
  }
  out.totalMs = performance.now() - sentAt;
  return out;
}

/** A stream event as this client reads it. */
interface TrpcItem {
  type: string;
  text?: string;
  code?: string;
  message?: string;
}

function addDelta(out: StreamResult, text: string, started: number): void {
  if (out.deltas === 0) out.ttftMs = performance.now() - started;
  out.deltas += 1;
  out.text += text;
}
