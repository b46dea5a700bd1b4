import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { Registry } from 'prom-client';
import { existsSync } from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { TRPCError } from '@trpc/server';
import { getErrorShape, transformTRPCResponse } from '@trpc/server/unstable-core-do-not-import';
import { MAX_TRPC_BATCH_SIZE } from '../../shared/transport';
import sirv from 'sirv';
import { devTokenInputSchema } from '../../shared/api';
import { bearerToken, refusalMessage } from '../auth/tokens';
import { lazyChild } from '../observability/logger';
import { createContextFor, type GatewayContext, type GatewayDeps } from './context';
import { retryAfterHeadersOfErrors } from './gatewayFailure';
import { BodyTooLargeError, readBody, sendJson } from './http/readBody';
import { createTrpcCallFastPath } from './http/trpcCallFastPath';
import { handleAnthropicRequest } from './anthropic/handleAnthropicRequest';
import { anthropicError } from './anthropic/anthropicWire';
import { handleOpenAIRequest } from './openai/handleOpenAIRequest';
import { appRouter } from './router';

export interface ReadinessReport {
  ok: boolean;
  checks: Record<string, 'ok' | string>;
}

export interface MetricsSource {
  registry: Registry;
  /** METRICS_TOKEN; null = open (bind to a private interface then). */
  token: string | null;
  /** Brings scrape-time gauges (pool state) up to date. */
  refresh?: () => Promise<void>;
}

/** Constant-time comparison, so a wrong token's timing says nothing about the right one. */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface HttpHandlerOptions {
  deps: GatewayDeps;
  /** Browser origins allowed to call the API cross-origin; empty = same-origin only. */
  corsOrigins: readonly string[];
  /** Requests with larger bodies are refused with 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /**
   * The body limit of a chat request (`/v1/chat/completions`, tRPC `chat.start` / `chat.complete`),
   * whose images come as data URLs: default 16 MiB (one image data URL at its largest,
   * MAX_IMAGE_DATA_URL_CHARS, and the conversation). Over `maxBodyBytes` it applies only to a
   * request that states its `content-length`, within `largeBodyBudgetBytes`, and is read only
   * once its token checked out.
   */
  maxChatBodyBytes?: number;
  /** Bytes of large chat bodies (over `maxBodyBytes`) held at once; past it such a request gets 503 + retry-after. Default 128 MiB. */
  largeBodyBudgetBytes?: number;
  /** The built demo client (dist/client); null or missing = `/` answers 404. */
  clientDir?: string | null;
  /** Present only in demo mode: `POST /dev/token` mints tokens for the demo's login screen. */
  devTokens?: boolean;
  readiness: () => Promise<ReadinessReport>;
  /** GET /metrics; absent = no metrics endpoint. */
  metrics?: MetricsSource;
  /** Serve chat.start without tRPC's HTTP adapter (trpcCallFastPath.ts). Default true; tests compare both. */
  trpcFastPath?: boolean;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_MAX_CHAT_BODY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_LARGE_BODY_BUDGET_BYTES = 128 * 1024 * 1024;
const CHAT_PATHS = new Set(['/v1/chat/completions', '/v1/responses', '/trpc/chat.start', '/trpc/chat.complete', '/v1/messages', '/v1/messages/count_tokens']);

/** The gateway's one request listener: health, tRPC, the OpenAI-compatible /v1, and the demo client. */
export function createHttpHandler(options: HttpHandlerOptions): RequestListener {
  const { deps } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxChatBodyBytes = Math.max(maxBodyBytes, options.maxChatBodyBytes ?? DEFAULT_MAX_CHAT_BODY_BYTES);
  // Requests allowed a body over maxBodyBytes: a chat request that stated its length and got
  // room in the budget. Everything else (chunked bodies, other paths) is read to maxBodyBytes.
  // The budget bounds what many large uploads at once can hold in memory (each is parsed too);
  // the 30 s request timeout bounds how long a slow one holds its share.
  const largeBodies = new WeakSet<IncomingMessage>();
  let largeBodyBudget = options.largeBodyBudgetBytes ?? DEFAULT_LARGE_BODY_BUDGET_BYTES;
  const bodyLimitOf = (req: IncomingMessage) => (largeBodies.has(req) ? maxChatBodyBytes : maxBodyBytes);
  // Once, not per request: /v1 logs nothing of its own (the engine's layers log with the request id).
  const openaiOptions = { deps, bodyLimitOf };
  const requestIds = new WeakMap<IncomingMessage, string>();
  const contextFor = (req: IncomingMessage, requestId: string) =>
    // Every line a procedure logs carries the request id.
    createContextFor({ ...deps, logger: lazyChild(deps.logger, { requestId }) }, req, requestId);
  const onError = (error: TRPCError, path: string | undefined, ctx: GatewayContext | undefined) => {
    if (error.code === 'INTERNAL_SERVER_ERROR') {
      deps.logger.error({ path, requestId: ctx?.requestId, err: error.cause instanceof Error ? error.cause.message : error.message }, 'procedure failed');
    }
  };
  // chat.start, before every chat's first token, skips tRPC's HTTP adapter (see trpcCallFastPath.ts).
  const callFastPath = createTrpcCallFastPath({
    router: appRouter,
    paths: new Set(['chat.start', 'chat.complete']),
    createContext: contextFor,
    onError,
    errorHeaders: (error) => retryAfterHeadersOfErrors([error]),
    maxBodyBytes,
    // A large chat body is read only for a signed-in caller.
    maxBodyBytesFor: (req, ctx) => (ctx.user ? bodyLimitOf(req) : maxBodyBytes),
  });
  // Contexts of requests whose client asked for the connection to close after the answer.
  const closing = new WeakSet<GatewayContext>();
  const trpc = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    maxBodySize: maxBodyBytes,
    // refuseLargeBatch answers first, with the limit in its message; this is the backstop.
    maxBatchSize: MAX_TRPC_BATCH_SIZE,
    createContext: async ({ req }) => {
      const ctx = await contextFor(req, requestIds.get(req) ?? randomUUID());
      if (asksToClose(req)) closing.add(ctx);
      return ctx;
    },
    onError: ({ error, path, ctx }) => onError(error, path, ctx),
    // tRPC's SSE answers (pool.watch) say `connection: keep-alive`, which makes Node keep a
    // socket its client asked to close; and a body refused for its size should not be read on
    // to its end. `connection: close` in both cases, as Keyrack's own paths do (readBody, /v1).
    // A 429 says when to come back (`retry-after`), as /v1 does.
    responseMeta: ({ ctx, errors }) => {
      const close = (ctx && closing.has(ctx)) || errors.some((error) => error.code === 'PAYLOAD_TOO_LARGE');
      const retry = retryAfterHeadersOfErrors(errors);
      return close ? { headers: { ...CLOSE_CONNECTION.headers, ...retry } } : { headers: retry };
    },
  });
  const statics =
    options.clientDir && existsSync(options.clientDir)
      ? sirv(options.clientDir, { single: true, etag: true, gzip: true, brotli: true })
      : null;

  return (req, res) => {
    // A caller's own id is kept when it looks like one, so logs can be joined across services.
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    requestIds.set(req, requestId);
    res.setHeader('x-request-id', requestId);

    if (!applyCors(req, res, options.corsOrigins)) return;
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    // Refused before reading a byte; chunked bodies are cut by the readers (tRPC's maxBodySize, readBody).
    const length = Number(req.headers['content-length'] ?? 0);
    const limit = CHAT_PATHS.has(path) ? maxChatBodyBytes : maxBodyBytes;
    if (length > limit && path.startsWith('/v1/messages')) {
      // Anthropic's clients read Anthropic's error shape (issue 21).
      res.setHeader('connection', 'close');
      sendJson(res, 413, anthropicError('request_too_large', `request body over ${limit} bytes`, requestId), { 'request-id': requestId });
      req.resume();
      return;
    }
    if (length > limit) {
      res.setHeader('connection', 'close');
      sendJson(res, 413, { error: { message: `request body over ${limit} bytes`, type: 'invalid_request_error', param: null, code: 'request_too_large' } });
      req.resume();
      return;
    }
    if (length > maxBodyBytes) {
      if (length > largeBodyBudget) {
        res.setHeader('connection', 'close');
        sendJson(res, 503, { error: { message: 'too many large requests at once; retry shortly', type: 'server_error', param: null, code: 'busy' } }, { 'retry-after': '1' });
        req.resume();
        return;
      }
      largeBodyBudget -= length;
      largeBodies.add(req);
      res.once('close', () => void (largeBodyBudget += length));
    }

    void route(req, res, path, requestId).catch((error: unknown) => {
      deps.logger.error({ requestId, path, err: error instanceof Error ? error.message : String(error) }, 'request failed');
      if (!res.headersSent) sendJson(res, 500, { error: { message: 'internal error', type: 'server_error', param: null, code: null } });
      else res.destroy();
    });
  };

  /** Prometheus text; with METRICS_TOKEN set, only for `Authorization: Bearer <METRICS_TOKEN>`. */
  async function metrics(req: IncomingMessage, res: ServerResponse, source: MetricsSource): Promise<void> {
    if (source.token && !sameSecret(bearerToken(req.headers.authorization) ?? '', source.token)) {
      res.setHeader('www-authenticate', 'Bearer');
      return sendJson(res, 401, { error: 'metrics token required' });
    }
    await source.refresh?.();
    res.writeHead(200, { 'content-type': source.registry.contentType });
    res.end(await source.registry.metrics());
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string, requestId: string): Promise<void> {
    if (path === '/healthz') return sendJson(res, 200, { ok: true });
    if (path === '/readyz') {
      const report = await options.readiness();
      return sendJson(res, report.ok ? 200 : 503, report);
    }
    if (path === '/metrics' && options.metrics) return metrics(req, res, options.metrics);
    if (path.startsWith('/trpc/') && refuseLargeBatch(req, res, path, requestId)) return;
    if ((path === '/trpc/chat.start' || path === '/trpc/chat.complete') && options.trpcFastPath !== false && (await callFastPath(req, res, requestId))) return;
    if (path === '/trpc' || path.startsWith('/trpc/')) return trpc(req, res);
    // Anthropic's Messages API and, for requests with `anthropic-version`, its /v1/models (issue 21).
    if (path.startsWith('/v1/') && (await handleAnthropicRequest(req, res, path, requestId, openaiOptions))) return;
    if (path.startsWith('/v1/') && (await handleOpenAIRequest(req, res, path, requestId, openaiOptions))) return;
    if (path === '/admin/api-keys/status') return adminKeyStatus(req, res);
    if (path === '/dev/token' && options.devTokens) return devToken(req, res);
    if ((req.method === 'GET' || req.method === 'HEAD') && statics && !isApiPath(path)) {
      return statics(req, res, () => sendJson(res, 404, { error: 'not found' }));
    }
    if ((req.method === 'GET' || req.method === 'HEAD') && path === '/' && !statics) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('The demo client is not built. Run `npm run build:client` (npm start does it), or `npm run dev`.\n');
      return;
    }
    sendJson(res, 404, { error: 'not found' });
  }

  /** The seed's endpoint: the same JSON as pool.status, for an admin bearer token. */
  async function adminKeyStatus(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'use GET' }, { allow: 'GET' });
    const verified = await deps.tokens.verify(bearerToken(req.headers.authorization));
    if (!verified.ok) return sendJson(res, 401, { error: refusalMessage(verified.reason) });
    if (verified.user.role !== 'admin') return sendJson(res, 403, { error: 'admin role required' });
    sendJson(res, 200, await deps.pool.status());
  }

  async function devToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'use POST' }, { allow: 'POST' });
    let parsed;
    try {
      parsed = devTokenInputSchema.safeParse(JSON.parse((await readBody(req, res, maxBodyBytes)) || '{}'));
    } catch (error) {
      return sendJson(res, error instanceof BodyTooLargeError ? 413 : 400, { error: 'body must be JSON { sub, role }' });
    }
    if (!parsed.success) return sendJson(res, 400, { error: 'body must be { sub, role? }', issues: parsed.error.issues });
    sendJson(res, 200, { token: await deps.tokens.mint(parsed.data, Math.min(DEV_TOKEN_TTL_S, deps.tokens.maxAgeSeconds)) });
  }
}

const DEV_TOKEN_TTL_S = 12 * 3600;

/**
 * A tRPC batch (`?batch=1`, procedures comma-separated in the path) of more than
 * MAX_TRPC_BATCH_SIZE calls gets a 400 in tRPC's error format before any of it runs: one
 * request once ran 100 upstream calls (issue 24.11). tRPC percent-decodes the path before
 * splitting it, so `%2C` counts as a comma too. True when the request is answered.
 */
function refuseLargeBatch(req: IncomingMessage, res: ServerResponse, path: string, requestId: string): boolean {
  // One procedure named (every chat.start the SDK sends, `?batch=1` or not): nothing to count.
  if (!path.includes(',') && !path.includes('%')) return false;
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q < 0 || new URLSearchParams(url.slice(q + 1)).get('batch') !== '1') return false;
  const calls = 1 + (path.match(/,|%2c/gi)?.length ?? 0);
  if (calls <= MAX_TRPC_BATCH_SIZE) return false;
  const error = new TRPCError({
    code: 'BAD_REQUEST',
    message: `a tRPC batch may hold at most ${MAX_TRPC_BATCH_SIZE} procedure calls, this one has ${calls}: send the rest in another request (the Keyrack SDK splits batches itself)`,
  });
  const config = appRouter._def._config;
  // The errorFormatter reads only the request id from the context: none was made for this request.
  const shape = getErrorShape({ config, error, type: 'unknown', path: undefined, input: undefined, ctx: { requestId } as never });
  // Not read: the body of a refused request is not worth its bytes.
  res.setHeader('connection', 'close');
  sendJson(res, 400, transformTRPCResponse(config, { error: shape }));
  req.resume();
  return true;
}

function isApiPath(path: string): boolean {
  return path.startsWith('/trpc') || path.startsWith('/v1/') || path.startsWith('/admin/api-keys') || path.startsWith('/dev/');
}

/** Sets CORS headers for allowed origins; answers preflights. False when the request is done. */
function applyCors(req: IncomingMessage, res: ServerResponse, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (!origin || !allowed.includes(origin)) {
    return true; // same-origin needs nothing; a foreign origin gets no CORS headers, so browsers block it
  }
  res.setHeader('access-control-allow-origin', origin);
  res.setHeader('vary', 'Origin');
  res.setHeader('access-control-expose-headers', 'x-request-id, retry-after, request-id');
  if (req.method === 'OPTIONS') {
    res.writeHead(204, {
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'authorization, content-type, x-request-id, last-event-id, trpc-accept, x-api-key, anthropic-version, anthropic-beta, x-keyrack-max-wait-ms',
      'access-control-max-age': '600',
    });
    res.end();
    return false;
  }
  return true;
}

const CLOSE_CONNECTION = { headers: { connection: 'close' } };

/** The client wants the connection closed after this answer (HTTP/1.1 `Connection: close`, or HTTP/1.0 without keep-alive). */
function asksToClose(req: IncomingMessage): boolean {
  const connection = req.headers.connection?.toLowerCase() ?? '';
  return connection.includes('close') || (req.httpVersionMinor === 0 && !connection.includes('keep-alive'));
}
