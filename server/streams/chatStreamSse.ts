import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StreamEvent } from '../../shared';
import { chatStreamInputSchema } from '../../shared/api';
import { bearerToken, type TokenService } from '../auth/tokens';
import type { Logger } from '../observability/logger';
import { StreamLimitError, type ChatStreams } from './ChatStreams';
import { StreamedResponse } from './StreamedResponse';

export interface ChatStreamSseOptions {
  tokens: Pick<TokenService, 'verify'>;
  streams: Pick<ChatStreams, 'open' | 'follow'>;
  logger: Logger;
  /** tRPC's `sse` settings (server/gateway/trpc.ts), so this path pings and advises the client alike. */
  sse?: { ping?: { enabled?: boolean; intervalMs?: number }; client?: { reconnectAfterInactivityMs?: number } };
}

const PATH = '/trpc/chat.stream';
/**
 * The reason a response's own signal fires (its answer ended or its socket closed), made once:
 * abort() without one builds a DOMException, stack trace included, on every call, even on a
 * signal already aborted. With 1,000 streams ending together that was ~35 ms of one burst.
 */
const RESPONSE_DONE = new Error('chat.stream response done');
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * `GET /trpc/chat.stream` for the common case, written straight to the socket in tRPC's own SSE
 * wire format (what httpSubscriptionLink reads: `connected` with the client options, each
 * tracked item as `data:` + `id:`, `ping` when quiet, `return` at the end).
 *
 * Why: tRPC builds each subscription's body from WHATWG streams (a ReadableStream from the
 * generator, a TransformStream, a TextEncoderStream) plus a Promise.race per item for pings. At
 * 1,000 concurrent streams that machinery was most of the gateway's CPU and ~1 MiB of RSS per
 * stream (issue #8). Here each event is one JSON.stringify and one socket write (StreamedResponse), with backpressure.
 *
 * Only the happy path is served here: an authenticated same-origin request for a stream its
 * user owns. Anything else (bad input, no or bad token, unknown stream, a cross-origin request
 * that needs CORS headers) resolves false and is left to tRPC, which answers it exactly as
 * before. Nothing is written to `res` before deciding.
 */
export function createChatStreamSse(options: ChatStreamSseOptions): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const pingMs = options.sse?.ping?.enabled ? (options.sse.ping.intervalMs ?? 1_000) : 0;
  const connected = `event: connected\ndata: ${JSON.stringify(options.sse?.client ?? {})}\n\n\n`;

  return async (req, res) => {
    if (req.method !== 'GET' || req.headers.origin !== undefined) return false;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if ((q < 0 ? url : url.slice(0, q)) !== PATH) return false;
    const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    let raw: unknown;
    try {
      raw = JSON.parse(params.get('input') ?? 'null');
    } catch {
      return false;
    }
    // As tRPC does: a reconnecting EventSource's Last-Event-ID overrides the input's.
    const lastEventId = req.headers['last-event-id'] ?? params.get('lastEventId') ?? params.get('Last-Event-Id');
    if (typeof lastEventId === 'string' && lastEventId !== '' && typeof raw === 'object' && raw !== null) raw = { ...raw, lastEventId };
    const input = chatStreamInputSchema.safeParse(raw);
    if (!input.success) return false;
    const verified = await options.tokens.verify(bearerToken(req.headers.authorization));
    if (!verified.ok) return false;
    const target = { streamId: input.data.streamId, userId: verified.user.id, lastEventId: input.data.lastEventId ?? null };
    const ac = new AbortController();
    const done = () => {
      if (!ac.signal.aborted) ac.abort(RESPONSE_DONE);
    };
    let quiet = true;
    const body = new StreamedResponse(res);
    // A stream of this process is pushed to the socket as its events arrive.
    let ended: () => void = () => {};
    let follower: ReturnType<ChatStreamSseOptions['streams']['follow']>;
    let read: Awaited<ReturnType<ChatStreamSseOptions['streams']['open']>> = null;
    try {
      follower = options.streams.follow(target, {
        write: (id, event) => {
          quiet = false;
          return body.write(`data: ${eventJson(event)}\nid: ${id}\n\n\n`);
        },
        end: () => {
          res.end('event: return\ndata: \n\n\n');
          ended();
        },
      }, ac.signal);
      if (!follower) read = await options.streams.open(target);
    } catch (error) {
      // Over the user's subscription cap: tRPC answers it (TOO_MANY_REQUESTS), as it does every refusal.
      if (error instanceof StreamLimitError) return false;
      throw error;
    }
    if (!follower && !read) return false;

    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    res.on('close', done);
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      // tRPC's adapter also sends `connection: keep-alive`; left out here, as in /v1, so that a
      // client's `Connection: close` is honoured (Node keeps other connections alive itself).
      'x-request-id': requestId,
    });
    body.write(connected);
    const ping = pingMs > 0 ? setInterval(() => {
      if (quiet) body.write('event: ping\ndata: \n\n\n');
      quiet = true;
    }, pingMs) : undefined;
    if (follower) {
      await new Promise<void>((resolve) => {
        ended = resolve;
        ac.signal.addEventListener('abort', () => resolve(), { once: true });
        body.onDrain(follower.resume);
        follower.start();
      });
      clearInterval(ping);
      done();
      return true;
    }
    try {
      for await (const { id, event } of read!(ac.signal)) {
        quiet = false;
        if (!body.write(`data: ${eventJson(event)}\nid: ${id}\n\n\n`) && !ac.signal.aborted) await body.drained();
      }
      if (!ac.signal.aborted) res.end('event: return\ndata: \n\n\n');
    } catch (error) {
      options.logger.error({ requestId, path: 'chat.stream', err: error instanceof Error ? error.message : String(error) }, 'procedure failed');
      // tRPC's shape for an INTERNAL_SERVER_ERROR with the gateway's errorFormatter (no stack).
      const shape = { message: 'internal error', code: -32603, data: { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500, path: 'chat.stream', requestId } };
      if (!ac.signal.aborted) res.end(`event: serialized-error\ndata: ${JSON.stringify(shape)}\n\n\n`);
    } finally {
      clearInterval(ping);
      done();
    }
    return true;
  };
}

/**
 * An event as JSON. A text delta (nearly every event) is `{type, text}`, written here as
 * JSON.stringify writes it with only its text serialized: one string per event.
 */
function eventJson(event: StreamEvent): string {
  return event.type === 'delta' ? `{"type":"delta","text":${JSON.stringify(event.text)}}` : JSON.stringify(event);
}
