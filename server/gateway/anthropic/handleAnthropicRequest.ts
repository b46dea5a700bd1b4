import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { bearerToken, refusalMessage, type AuthUser } from '../../auth/tokens';
import { checkPrompt } from '../../business/checkPrompt';
import { ESTIMATED_BYTES_PER_TOKEN, promptTokensAtMost } from '../../business/countPromptTokens';
import type { ResolvedModel } from '../../business/types';
import type { PooledAttempt, PooledCallFailure } from '../../dispatch/pooledCall';
import { ANTHROPIC_VERSION } from '../../providers/anthropic/anthropicMessagesApi';
import { ProviderError } from '../../providers/ProviderError';
import { withoutKey } from '../../providers/http/KeyEchoGuard';
import { postUpstream } from '../../providers/http/postUpstream';
import { readAnswerBody, sharedUpstreamHttp, type UpstreamHttp } from '../../providers/http/UpstreamHttp';
import { StreamedResponse } from '../../streams/StreamedResponse';
import type { GatewayDeps } from '../context';
import { retryAfterMsOf } from '../gatewayFailure';
import { BodyTooLargeError, readBody, sendJson } from '../http/readBody';
import { MAX_WAIT_HEADER_REFUSAL, maxWaitOf } from '../http/maxWaitHeader';
import { anthropicPromptMessages } from './anthropicPromptMessages';
import { mergeUsage, tokenUsageOf } from './anthropicUsage';
import {
  ANTHROPIC_BETA_HEADER,
  ANTHROPIC_ERROR_OF,
  ANTHROPIC_VERSION_HEADER,
  anthropicCountTokensSchema,
  anthropicCreateSchema,
  anthropicError,
  anthropicModel,
  REFUSED_HEADERS,
  refusalOfIssue,
  type AnthropicCountTokensRequest,
  type AnthropicErrorType,
} from './anthropicWire';
import { relayMessageStream, streamErrorEvent, type StreamRelayState } from './relayMessageStream';

export interface AnthropicHandlerOptions {
  deps: GatewayDeps;
  /** A request's body limit (a chat's may be large: images and PDFs inline); read only once the token checked out. */
  bodyLimitOf(req: IncomingMessage): number;
  /** Upstream connections; default the process-wide pool. */
  http?: UpstreamHttp;
}

/**
 * Anthropic's Messages API on Keyrack (issue 21): `POST /v1/messages` (whole and streamed),
 * `POST /v1/messages/count_tokens`, and `GET /v1/models[/{id}]` for requests that carry an
 * `anthropic-version` header (what Anthropic's SDKs always send; OpenAI clients never do, and
 * keep OpenAI's shape). The official `@anthropic-ai/sdk` works with `baseURL` at Keyrack and the
 * user's Keyrack token as its API key (`x-api-key`) or auth token (`Authorization: Bearer`).
 *
 * Only models whose provider is Anthropic are served, and the request is passed through: checked
 * at the edge (anthropicWire.ts), `model` replaced by the catalog's upstream id, sent on a key
 * of the Anthropic pool (or the user's own) through the shared pooled call (MeteredCalls:
 * picks, cooldowns, retries on another key before the first event, limits, budget, ledger), and
 * Anthropic's answer relayed as Anthropic sent it, `model` shown as the client named it. Errors
 * are Anthropic's shape and statuses, with a `request-id` header. Returns false when the
 * request is not one of these (the OpenAI-compatible handler takes it).
 */
export async function handleAnthropicRequest(req: IncomingMessage, res: ServerResponse, path: string, requestId: string, options: AnthropicHandlerOptions): Promise<boolean> {
  const route = routeOf(req, path);
  if (!route) return false;
  res.setHeader('request-id', requestId);
  const fail = (status: number, type: AnthropicErrorType, message: string, headers: Record<string, string> = {}) => sendJson(res, status, anthropicError(type, message, requestId), headers);

  if (route === 'unknown') {
    fail(404, 'not_found_error', `Keyrack does not serve ${path} (it serves POST /v1/messages, POST /v1/messages/count_tokens and GET /v1/models)`);
    return true;
  }
  const expected = route === 'models' || route === 'model' ? 'GET' : 'POST';
  if (req.method !== expected) {
    fail(405, 'invalid_request_error', `use ${expected} ${path}`, { allow: expected });
    return true;
  }
  const { deps } = options;
  const verified = await deps.tokens.verify(keyrackToken(req));
  if (!verified.ok) {
    fail(401, 'authentication_error', `${refusalMessage(verified.reason)}: send your Keyrack token as x-api-key or Authorization: Bearer`);
    return true;
  }
  if (route === 'models' || route === 'model') {
    await (route === 'models' ? listModels(req, deps, fail, res) : retrieveModel(path, deps, fail, res));
    return true;
  }
  const headers = forwardedHeaders(req);
  if (typeof headers === 'string') {
    fail(400, 'invalid_request_error', headers);
    return true;
  }
  // Issue 22: how long it may wait for a key, as on every endpoint the key pools serve.
  const maxWait = maxWaitOf(req);
  if (maxWait === null) {
    fail(400, 'invalid_request_error', MAX_WAIT_HEADER_REFUSAL);
    return true;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await readBody(req, res, options.bodyLimitOf(req)));
  } catch (error) {
    if (error instanceof BodyTooLargeError) fail(413, 'request_too_large', error.message);
    else fail(400, 'invalid_request_error', 'There was an issue with the format or content of your request: the body must be JSON');
    return true;
  }
  await serveMessages(route, raw, headers, maxWait, verified.user, requestId, res, options);
  return true;
}

type Route = 'create' | 'count' | 'models' | 'model' | 'unknown';
type Fail = (status: number, type: AnthropicErrorType, message: string, headers?: Record<string, string>) => void;

/** Whose request this is: every /v1/messages path, and /v1/models when an Anthropic client asks. */
function routeOf(req: IncomingMessage, path: string): Route | null {
  if (path === '/v1/messages') return 'create';
  if (path === '/v1/messages/count_tokens') return 'count';
  if (path.startsWith('/v1/messages/')) return 'unknown';
  // The anthropic-version header tells an Anthropic client (its SDKs always send it; OpenAI's never do).
  if (req.headers['anthropic-version'] === undefined) return null;
  if (path === '/v1/models') return 'models';
  if (path.startsWith('/v1/models/')) return 'model';
  return null;
}

/** `x-api-key` (the SDK's `apiKey`) or `Authorization: Bearer` (its `authToken`): the user's Keyrack token either way. */
function keyrackToken(req: IncomingMessage): string | null {
  const key = req.headers['x-api-key'];
  const value = Array.isArray(key) ? key[0] : key;
  return value?.trim() ? value.trim() : bearerToken(req.headers.authorization);
}

/** The Anthropic headers passed upstream, checked; or why the request is refused. */
function forwardedHeaders(req: IncomingMessage): Record<string, string> | string {
  for (const name of REFUSED_HEADERS) {
    if (req.headers[name] !== undefined) return `${name}: Keyrack serves from its own Anthropic accounts; a workspace or user profile of yours cannot be selected`;
  }
  const version = single(req.headers['anthropic-version']) ?? ANTHROPIC_VERSION;
  if (!ANTHROPIC_VERSION_HEADER.test(version)) return 'anthropic-version: expected a version date such as 2023-06-01';
  const beta = single(req.headers['anthropic-beta']);
  if (beta !== undefined && !ANTHROPIC_BETA_HEADER.test(beta)) return 'anthropic-beta: expected a comma-separated list of beta names';
  return { 'anthropic-version': version, ...(beta !== undefined ? { 'anthropic-beta': beta } : {}) };
}

function single(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value.join(',') : value;
  return v === undefined ? undefined : v.trim();
}

async function serveMessages(route: 'create' | 'count', raw: unknown, headers: Record<string, string>, maxWaitMs: number | undefined, user: AuthUser, requestId: string, res: ServerResponse, options: AnthropicHandlerOptions): Promise<void> {
  const { deps } = options;
  const fail: Fail = (status, type, message, extra = {}) => sendJson(res, status, anthropicError(type, message, requestId), extra);
  const parsed = (route === 'create' ? anthropicCreateSchema : anthropicCountTokensSchema).safeParse(raw, { reportInput: true });
  if (!parsed.success) return fail(400, 'invalid_request_error', refusalOfIssue(parsed.error.issues[0] as z.core.$ZodIssue));
  const body = parsed.data as AnthropicCountTokensRequest & { max_tokens?: number; stream?: boolean };
  const calls = deps.calls;
  if (!calls) return fail(529, 'overloaded_error', 'pooled calls are not available on this gateway');

  // Resolved here (the catalog is cached) to refuse with Anthropic's words before any key is leased.
  const model = await deps.catalog.resolve(body.model);
  if (!model) return fail(404, 'not_found_error', `model: ${body.model}`);
  const refusal = refusalFor(model, body);
  if (refusal) return fail(400, 'invalid_request_error', refusal);

  const messages = anthropicPromptMessages(body);
  const settings = await deps.domain?.business.getSettings();
  let estimatedInputTokens: number;
  if (settings) {
    const prompt = await checkPrompt(messages, settings);
    if (prompt.status === 'refused') return fail(400, 'invalid_request_error', `prompt is too long: ${prompt.message}`);
    estimatedInputTokens = prompt.promptTokens;
  } else {
    estimatedInputTokens = Math.ceil(promptTokensAtMost(messages) / ESTIMATED_BYTES_PER_TOKEN);
  }

  // The client going away aborts the upstream call (a response sent in full has nothing left to stop).
  const upstream = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) upstream.abort();
  });
  const http = options.http ?? sharedUpstreamHttp();
  // The request as the client wrote it, but for the model: Anthropic's id from the catalog.
  const upstreamBody = JSON.stringify({ ...(raw as Record<string, unknown>), model: model.upstreamModel });
  // Non-2xx: Anthropic's classified error (cooldowns from its headers), and another key is tried.
  const post = (attempt: PooledAttempt, endpoint: string, stream: boolean) =>
    postUpstream(http, { provider: 'anthropic', url: `${attempt.ctx.baseUrl}${endpoint}`, headers: { ...headers, 'x-api-key': attempt.ctx.apiKey }, body: upstreamBody, ctx: attempt.ctx, stream });
  const base = {
    model: body.model,
    kind: 'chat' as const,
    userId: user.id,
    signal: upstream.signal,
    requestId,
    estimatedInputTokens,
    ...(maxWaitMs !== undefined ? { maxWaitMs } : {}),
  };

  if (route === 'count' || body.stream !== true) {
    const endpoint = route === 'count' ? '/v1/messages/count_tokens' : '/v1/messages';
    const result = await calls.call<string>({
      ...base,
      // Token counting is free at Anthropic: nothing to hold or bill.
      bound: { inputTokensAtMost: route === 'count' ? 0 : promptTokensAtMost(messages), outputTokensAtMost: route === 'count' ? 0 : (body.max_tokens ?? 0) },
      attempt: async (attempt) => {
        const response = await post(attempt, endpoint, false);
        return readWhole(withoutKey(await readAnswerBody(response, attempt.ctx.apiKey), attempt.ctx.apiKey), body.model, route === 'count');
      },
    });
    // A client gone while the answer was written upstream has no one to tell.
    if (res.destroyed) return;
    if (!result.ok) return sendFailure(res, result, requestId);
    const text = result.value;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }

  const stream = new StreamedResponse(res);
  const state: StreamRelayState = { usage: {}, stopped: false, errorRelayed: false, deltaChars: 0 };
  const result = await calls.call<null>({
    ...base,
    bound: { inputTokensAtMost: promptTokensAtMost(messages), outputTokensAtMost: body.max_tokens ?? 0 },
    producedOutputTokens: () => Math.ceil(state.deltaChars / ESTIMATED_BYTES_PER_TOKEN),
    attempt: async (attempt) => {
      const response = await post(attempt, '/v1/messages', true);
      // Each attempt starts afresh: what a failed one saw before its first event is not this one's.
      Object.assign(state, { usage: {}, stopped: false, errorRelayed: false, relayedError: undefined, deltaChars: 0 });
      await relayMessageStream({
        body: response.body,
        apiKey: attempt.ctx.apiKey,
        clientModel: body.model,
        stream,
        state,
        open: () => {
          attempt.started();
          res.writeHead(200, SSE_HEADERS);
        },
      });
      return { value: null, usage: tokenUsageOf(state.usage) };
    },
  });
  if (result.ok || res.writableEnded || res.destroyed) {
    if (!res.writableEnded) stream.end();
    return;
  }
  if (!res.headersSent) return sendFailure(res, result, requestId);
  // Broken off after its first event: Anthropic's own error event ends it (unless Anthropic's already did).
  const { type } = ANTHROPIC_ERROR_OF[result.code];
  stream.end(state.errorRelayed ? undefined : streamErrorEvent(type, result.message));
}

// No `connection` header: Node keeps the connection alive by itself (see handleOpenAIRequest).
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' };

/** A whole answer: a Message (its usage read, `model` as the client named it) or count_tokens' `{ input_tokens }` (free: no usage). */
function readWhole(text: string, clientModel: string, counting: boolean): { value: string; usage: ReturnType<typeof tokenUsageOf> | null } {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    throw new ProviderError({ kind: 'transient', message: 'anthropic: unreadable answer' });
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) throw new ProviderError({ kind: 'transient', message: 'anthropic: unreadable answer' });
  if (counting) return { value: text, usage: null };
  const record = message as Record<string, unknown>;
  const usage = {};
  mergeUsage(usage, record.usage);
  record.model = clientModel;
  return { value: JSON.stringify(record), usage: tokenUsageOf(usage) };
}

/**
 * Why the catalog's model cannot take this request, naming the field, or null. Only Anthropic's
 * models speak Messages (a passthrough); the catalog's capabilities are checked as for every
 * chat (a model without vision gets no image).
 */
function refusalFor(model: ResolvedModel, body: AnthropicCountTokensRequest): string | null {
  if (model.provider !== 'anthropic') {
    return `model: ${model.id} is served by ${model.provider}; /v1/messages serves Anthropic's models only (use /v1/chat/completions for the others)`;
  }
  if ((model.kind ?? 'chat') !== 'chat') return `model: ${model.id} is not a chat model`;
  const { capabilities } = model;
  if (!capabilities.tools && body.tools && body.tools.length > 0) return `tools: ${model.id} does not take tools`;
  if (!capabilities.reasoning && body.thinking && body.thinking.type !== 'disabled') return `thinking: ${model.id} does not think`;
  if (!capabilities.json_schema && body.output_config?.format) return `output_config.format: ${model.id} does not take a JSON schema`;
  if (!capabilities.vision) {
    for (const [i, message] of body.messages.entries()) {
      if (typeof message.content === 'string') continue;
      const j = message.content.findIndex((block) => block.type === 'image' || (block.type === 'tool_result' && Array.isArray(block.content) && block.content.some((b) => b.type === 'image')));
      if (j >= 0) return `messages.${i}.content.${j}: ${model.id} does not take images`;
    }
  }
  return null;
}

/** A failure before anything was sent, in Anthropic's shape and status (ANTHROPIC_ERROR_OF), retry-after on every 429. */
function sendFailure(res: ServerResponse, failure: PooledCallFailure, requestId: string): void {
  let { status, type } = ANTHROPIC_ERROR_OF[failure.code];
  let message = failure.message;
  // The pooled call names a refused field as `(field model)`; Anthropic starts its message with it.
  const named = /\s*\(field ([A-Za-z0-9_.[\]]+)\)/.exec(message);
  if (named) message = `${named[1]}: ${message.replace(named[0], '')}`;
  else if (failure.code === 'not_found') message = `model: ${message}`;
  // Budget held by answers still running is worth a retry once they end: a 429 with its time.
  if (failure.code === 'budget_exceeded' && /in progress/.test(failure.message)) ({ status, type } = { status: 429, type: 'rate_limit_error' });
  const retryAfterMs = status === 429 ? retryAfterMsOf(failure) : failure.retryAfterMs;
  const headers: Record<string, string> = retryAfterMs === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) };
  // A used-up budget renews at midnight: the SDK honours x-should-retry and does not retry.
  if (status === 402) headers['x-should-retry'] = 'false';
  sendJson(res, status, anthropicError(type, message, requestId), headers);
}

/** GET /v1/models with Anthropic's paging (`limit`, `after_id`, `before_id`): the catalog's Anthropic models. */
async function listModels(req: IncomingMessage, deps: GatewayDeps, fail: Fail, res: ServerResponse): Promise<void> {
  const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
  const limitText = query.get('limit');
  const limit = limitText === null ? 20 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return fail(400, 'invalid_request_error', 'limit: Input should be an integer from 1 to 1000');
  const models = (await deps.catalog.list()).filter(servedHere).map(anthropicModel);
  const after = query.get('after_id');
  const before = query.get('before_id');
  let start = 0;
  let end = models.length;
  if (after !== null) start = models.findIndex((m) => m.id === after) + 1;
  if (before !== null) end = Math.max(0, models.findIndex((m) => m.id === before));
  const page = before !== null && after === null ? models.slice(Math.max(start, end - limit), end) : models.slice(start, Math.min(end, start + limit));
  const hasMore = before !== null && after === null ? end - limit > start : start + limit < end;
  sendJson(res, 200, { data: page, has_more: hasMore, first_id: page[0]?.id ?? null, last_id: page[page.length - 1]?.id ?? null });
}

async function retrieveModel(path: string, deps: GatewayDeps, fail: Fail, res: ServerResponse): Promise<void> {
  let name = '';
  try {
    name = decodeURIComponent(path.slice('/v1/models/'.length));
  } catch {
    name = '';
  }
  const model = name === '' ? null : await deps.catalog.resolve(name);
  if (!model || !servedHere(model)) return fail(404, 'not_found_error', `model: ${name}`);
  sendJson(res, 200, anthropicModel(model));
}

/** The models /v1/messages serves: Anthropic's chat models. */
function servedHere(model: ResolvedModel): boolean {
  return model.provider === 'anthropic' && (model.kind ?? 'chat') === 'chat';
}
