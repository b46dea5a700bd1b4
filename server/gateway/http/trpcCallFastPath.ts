import type { IncomingMessage, ServerResponse } from 'node:http';
import { TRPCError, type AnyRouter } from '@trpc/server';
import {
  callProcedure,
  getErrorShape,
  getHTTPStatusCodeFromError,
  getTRPCErrorFromUnknown,
  transformTRPCResponse,
} from '@trpc/server/unstable-core-do-not-import';
import { BodyTooLargeError, readBody } from './readBody';

export interface TrpcCallFastPathOptions<TContext> {
  router: AnyRouter;
  /** Mutations served here, by tRPC path (`chat.start`). */
  paths: ReadonlySet<string>;
  createContext(req: IncomingMessage, requestId: string): Promise<TContext>;
  onError(error: TRPCError, path: string, ctx: TContext | undefined): void;
  /** Extra headers of an error answer (`retry-after` of a 429), as the adapter's responseMeta adds them. */
  errorHeaders?(error: TRPCError): Record<string, string>;
  maxBodyBytes: number;
  /** The body limit once the context is made (a larger one for a signed-in caller's chat); default maxBodyBytes. */
  maxBodyBytesFor?(req: IncomingMessage, ctx: TContext): number;
}

const PREFIX = '/trpc/';

/**
 * One tRPC mutation per request (`POST /trpc/<path>`, or `?batch=1` with a batch of one, as
 * httpBatchLink sends it), run through tRPC's own `callProcedure` (the same middlewares, input
 * and output validation and resolver) and answered in tRPC's JSON format, errors shaped by the
 * router's errorFormatter. What it leaves out is tRPC's HTTP adapter, which wraps each request
 * and response in WHATWG Request/Response objects and streams: ~0.3 ms per call on our 2-core
 * machines, paid before the first token of every chat (chat.start; issue #8).
 *
 * Anything else resolves false before reading a byte and goes to tRPC unchanged: other paths,
 * batches of several calls, non-JSON bodies, a streaming response asked for (`trpc-accept`).
 * A test compares the answers with tRPC's own for success and each kind of failure.
 */
export function createTrpcCallFastPath<TContext>(options: TrpcCallFastPathOptions<TContext>) {
  const config = options.router._def._config;

  return async (req: IncomingMessage, res: ServerResponse, requestId: string): Promise<boolean> => {
    if (req.method !== 'POST' || req.headers['trpc-accept'] !== undefined) return false;
    const contentType = req.headers['content-type'];
    if (contentType !== undefined && !contentType.startsWith('application/json')) return false;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const query = q < 0 ? '' : url.slice(q + 1);
    if (query !== '' && query !== 'batch=1') return false;
    const pathname = q < 0 ? url : url.slice(0, q);
    if (!pathname.startsWith(PREFIX)) return false;
    // Served paths are plain procedure names: no percent-decoding needed, none accepted.
    const path = pathname.slice(PREFIX.length);
    if (!options.paths.has(path)) return false;
    const batched = query === 'batch=1';

    const aborter = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) aborter.abort();
    });
    let ctx: TContext | undefined;
    let input: unknown;
    let item: object;
    let status = 200;
    let extraHeaders: Record<string, string> | undefined;
    try {
      // As tRPC's adapter: the context first, then the body (unreadable JSON is a BAD_REQUEST).
      ctx = await options.createContext(req, requestId);
      const text = await readBody(req, res, options.maxBodyBytesFor?.(req, ctx) ?? options.maxBodyBytes).catch((error: unknown) => {
        throw error instanceof BodyTooLargeError
          ? new TRPCError({ code: 'PAYLOAD_TOO_LARGE', message: error.message })
          : new TRPCError({ code: 'CLIENT_CLOSED_REQUEST', message: 'request body cut short', cause: error });
      });
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch (cause) {
        throw new TRPCError({ code: 'BAD_REQUEST', cause });
      }
      input = batched ? (typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['0'] : undefined) : body;
      const data: unknown = await callProcedure({
        router: options.router,
        path,
        getRawInput: async () => input,
        ctx,
        type: 'mutation',
        signal: aborter.signal,
        batchIndex: 0,
      });
      item = { result: { data } };
    } catch (cause) {
      const error = getTRPCErrorFromUnknown(cause);
      options.onError(error, path, ctx);
      status = getHTTPStatusCodeFromError(error);
      extraHeaders = options.errorHeaders?.(error);
      item = { error: getErrorShape({ config, error, type: 'mutation', path, input, ctx }) };
    }
    const json = JSON.stringify(transformTRPCResponse(config, batched ? [item as never] : (item as never)));
    if (res.destroyed) return true;
    const vary = res.getHeader('vary'); // CORS may have set `Origin`
    res.writeHead(status, {
      ...extraHeaders,
      'content-type': 'application/json',
      vary: vary === undefined ? 'trpc-accept, accept' : `${String(vary)}, trpc-accept, accept`,
      'content-length': Buffer.byteLength(json),
    });
    res.end(json);
    return true;
  };
}
