import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { chatRequestSchema, type StreamEvent } from '../../../shared';
import { bearerToken, refusalMessage, type AuthUser } from '../../auth/tokens';
import type { GatewayDeps } from '../context';
import { collectAnswer } from '../collectAnswer';
import { BodyTooLargeError, readBody, sendJson } from '../http/readBody';
import { OPENAI_ERROR_OF, openaiChatRequestSchema, openaiError, openaiFinishReason, openaiUsage, toChatRequest } from './openaiWire';

type ErrorEvent = Extract<StreamEvent, { type: 'error' }>;

export interface OpenAIHandlerOptions {
  deps: GatewayDeps;
  maxBodyBytes: number;
}

/**
 * The OpenAI-compatible endpoint: `POST /v1/chat/completions` (streaming and not) and
 * `GET /v1/models`, so existing OpenAI clients work with `baseURL` pointed at Keyrack and the
 * user's JWT as their API key. Returns false when the path is not one of ours.
 */
export async function handleOpenAIRequest(req: IncomingMessage, res: ServerResponse, path: string, requestId: string, options: OpenAIHandlerOptions): Promise<boolean> {
  const { deps } = options;
  const route = path === '/v1/chat/completions' ? 'chat' : path === '/v1/models' ? 'models' : null;
  if (!route) {
    if (!path.startsWith('/v1/')) return false;
    sendJson(res, 404, openaiError(`unknown endpoint ${path}`, 'invalid_request_error', 'unknown_url'));
    return true;
  }
  const expected = route === 'chat' ? 'POST' : 'GET';
  if (req.method !== expected) {
    sendJson(res, 405, openaiError(`use ${expected} ${path}`, 'invalid_request_error', 'method_not_allowed'), { allow: expected });
    return true;
  }

  const verified = await deps.tokens.verify(bearerToken(req.headers.authorization));
  if (!verified.ok) {
    sendJson(res, 401, openaiError(refusalMessage(verified.reason), 'authentication_error', 'invalid_api_key'));
    return true;
  }
  if (route === 'models') {
    const models = await deps.catalog.list();
    sendJson(res, 200, { object: 'list', data: models.map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: m.provider })) });
    return true;
  }
  await chatCompletions(req, res, verified.user, requestId, options);
  return true;
}

async function chatCompletions(req: IncomingMessage, res: ServerResponse, user: AuthUser, requestId: string, { deps, maxBodyBytes }: OpenAIHandlerOptions): Promise<void> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readBody(req, maxBodyBytes));
  } catch (error) {
    if (error instanceof BodyTooLargeError) sendJson(res, 413, openaiError(error.message, 'invalid_request_error', 'request_too_large'));
    else sendJson(res, 400, openaiError('body must be JSON', 'invalid_request_error', 'invalid_json'));
    return;
  }
  const body = openaiChatRequestSchema.safeParse(raw);
  const chat = body.success ? chatRequestSchema.safeParse(toChatRequest(body.data)) : null;
  if (!body.success || !chat?.success) {
    const issue = (body.success ? chat!.error! : body.error).issues[0];
    sendJson(res, 400, openaiError(issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid request', 'invalid_request_error', 'invalid_value', issue?.path.join('.') || null));
    return;
  }

  // The client going away aborts the upstream call.
  const upstream = new AbortController();
  // (A response that was sent in full has nothing upstream left to stop.)
  res.on('close', () => {
    if (!res.writableFinished) upstream.abort();
  });
  const delivery = body.data.stream ? 'stream' : 'whole';
  const events = deps.engine.stream({ chat: chat.data, userId: user.id, signal: upstream.signal, requestId, delivery })[Symbol.asyncIterator]();
  const id = `chatcmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);

  if (!body.data.stream) {
    const answer = await collectAnswer({ [Symbol.asyncIterator]: () => events });
    if (!answer.ok) return sendError(res, answer.error);
    const a = answer.value;
    sendJson(res, 200, {
      id,
      object: 'chat.completion',
      created,
      model: a.model,
      choices: [{ index: 0, message: { role: 'assistant', content: a.text, refusal: null }, logprobs: null, finish_reason: openaiFinishReason(a.finishReason) }],
      ...(a.usage ? { usage: openaiUsage(a.usage) } : {}),
    });
    return;
  }

  // Headers wait for the first event: a refusal (every key busy, unknown model) is then a real
  // HTTP status with retry-after rather than a 200 stream carrying an error.
  const first = await events.next();
  if (!first.done && first.value.type === 'error') return sendError(res, first.value);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  const includeUsage = body.data.stream_options?.include_usage === true;
  let model = chat.data.model;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...extra })}\n\n`);
  let usage: ReturnType<typeof openaiUsage> | null = null;
  let pending: IteratorResult<StreamEvent> = first;
  while (!pending.done) {
    const event = pending.value;
    if (event.type === 'start') {
      model = event.model;
      chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
    } else if (event.type === 'delta') {
      chunk([{ index: 0, delta: { content: event.text }, logprobs: null, finish_reason: null }]);
    } else if (event.type === 'usage') {
      usage = openaiUsage(event.usage);
    } else if (event.type === 'done') {
      chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: openaiFinishReason(event.finishReason) }]);
    } else if (event.type === 'error') {
      // OpenAI's own mid-stream error shape; the openai SDK raises it as an APIError.
      res.write(`data: ${JSON.stringify(openaiError(event.message, OPENAI_ERROR_OF[event.code].type, event.code))}\n\n`);
      res.end();
      return;
    }
    pending = await events.next();
  }
  if (includeUsage && usage) chunk([], { usage });
  res.end('data: [DONE]\n\n');
}

function sendError(res: ServerResponse, event: ErrorEvent): void {
  const { status, type } = OPENAI_ERROR_OF[event.code];
  const headers: Record<string, string> = {};
  if (event.retryAfterMs !== undefined) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(event.retryAfterMs / 1000)));
    headers['retry-after-ms'] = String(event.retryAfterMs);
  }
  sendJson(res, status, openaiError(event.message, type, event.code === 'not_found' ? 'model_not_found' : event.code), headers);
}
