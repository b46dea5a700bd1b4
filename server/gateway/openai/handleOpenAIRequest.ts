import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { chatRequestSchema, type StreamEvent, type ToolCall } from '../../../shared';
import { bearerToken, refusalMessage, type AuthUser } from '../../auth/tokens';
import type { GatewayDeps } from '../context';
import type { EventSink } from '../../streams/ChatEngine';
import { StreamedResponse } from '../../streams/StreamedResponse';
import { collectAnswer } from '../collectAnswer';
import { handleEmbeddingsRequest } from './handleEmbeddingsRequest';
import { retryAfterHeaders, retryAfterMsOf } from '../gatewayFailure';
import { BodyTooLargeError, readBody, sendJson } from '../http/readBody';
import { MAX_WAIT_HEADER, MAX_WAIT_HEADER_REFUSAL, maxWaitOf } from '../http/maxWaitHeader';
import { handleResponsesRoute } from './handleResponsesRequest';
import { OPENAI_ERROR_OF, openaiError, openaiFinishReason, openaiToolCalls, openaiUsage, readOpenAIChatRequest, refusalOf, wireField, wirePath, type OpenAIChatRequest } from './openaiWire';

type ErrorEvent = Extract<StreamEvent, { type: 'error' }>;

export interface OpenAIHandlerOptions {
  deps: GatewayDeps;
  /** A request's body limit (a chat's may be large: images as data URLs); read only once the token checked out. */
  bodyLimitOf(req: IncomingMessage): number;
}

/**
 * The OpenAI-compatible endpoint: `POST /v1/chat/completions` (streaming and not) and
 * `GET /v1/models`, so existing OpenAI clients work with `baseURL` pointed at Keyrack and the
 * user's JWT as their API key. Returns false when the path is not one of ours.
 */
export async function handleOpenAIRequest(req: IncomingMessage, res: ServerResponse, path: string, requestId: string, options: OpenAIHandlerOptions): Promise<boolean> {
  const { deps } = options;
  // OpenAI's Responses API, passed through (issue 21).
  if (path === '/v1/responses') return handleResponsesRoute(req, res, requestId, options);
  const route =
    path === '/v1/chat/completions' ? 'chat' : path === '/v1/embeddings' ? 'embeddings' : path === '/v1/models' ? 'models' : path.startsWith('/v1/models/') ? 'model' : null;
  if (!route) {
    if (!path.startsWith('/v1/')) return false;
    sendJson(res, 404, openaiError(`unknown endpoint ${path}`, 'invalid_request_error', 'unknown_url'));
    return true;
  }
  const expected = route === 'chat' || route === 'embeddings' ? 'POST' : 'GET';
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
    sendJson(res, 200, { object: 'list', data: models.map(openaiModel) });
    return true;
  }
  if (route === 'model') {
    // As the client asked for it: an id, or `provider/model` (its slash is a path segment or %2F).
    let name: string;
    try {
      name = decodeURIComponent(path.slice('/v1/models/'.length));
    } catch {
      name = '';
    }
    const model = name === '' ? null : await deps.catalog.resolve(name);
    if (!model) sendJson(res, 404, openaiError(`The model '${name}' does not exist`, 'invalid_request_error', 'model_not_found', 'model'));
    else sendJson(res, 200, openaiModel(model));
    return true;
  }
  if (route === 'embeddings') return handleEmbeddingsRequest(req, res, verified.user, requestId, deps, options.bodyLimitOf(req)).then(() => true);
  await chatCompletions(req, res, verified.user, requestId, options);
  return true;
}

/** OpenAI's model object. */
function openaiModel(m: { id: string; provider: string }) {
  return { id: m.id, object: 'model', created: 0, owned_by: m.provider };
}

async function chatCompletions(req: IncomingMessage, res: ServerResponse, user: AuthUser, requestId: string, { deps, bodyLimitOf }: OpenAIHandlerOptions): Promise<void> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readBody(req, res, bodyLimitOf(req)));
  } catch (error) {
    if (error instanceof BodyTooLargeError) sendJson(res, 413, openaiError(error.message, 'invalid_request_error', 'request_too_large'));
    else sendJson(res, 400, openaiError('body must be JSON', 'invalid_request_error', 'invalid_json'));
    return;
  }
  // The wire's shape, then the shared model's rules (ranges, tool calls answered, ...), both
  // refused with the wire's field names.
  const read = readOpenAIChatRequest(raw);
  if (!read.ok) return sendRefusal(res, read.refusal);
  const wire = read.wire;
  // Issue 22: how long this request may wait for a key, from its header (capped by the pool's).
  const maxWait = maxWaitOf(req);
  if (maxWait === null) return sendJson(res, 400, openaiError(MAX_WAIT_HEADER_REFUSAL, 'invalid_request_error', 'invalid_header', MAX_WAIT_HEADER));
  const chat = chatRequestSchema.safeParse(maxWait === undefined ? read.chat : { ...read.chat, maxWaitMs: maxWait });
  if (!chat.success) return sendRefusal(res, refusalOf(chat.error.issues[0], (path) => wirePath(path, wire)));

  // The client going away aborts the upstream call.
  const upstream = new AbortController();
  // (A response that was sent in full has nothing upstream left to stop.)
  res.on('close', () => {
    if (!res.writableFinished) upstream.abort();
  });
  const delivery = wire.stream ? 'stream' : 'whole';
  const run = (emit: EventSink) => deps.engine.run({ chat: chat.data, userId: user.id, signal: upstream.signal, controller: upstream, requestId, delivery }, emit);
  const id = `chatcmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);

  if (!wire.stream) {
    // Tool calls and reasoning are taken off the events on their way to collectAnswer (which keeps the text).
    const calls = new ToolCallAssembler();
    let reasoning = '';
    const answer = await collectAnswer((emit) =>
      run((event) => {
        if (event.type === 'tool_call_delta') calls.add(event);
        else if (event.type === 'reasoning') reasoning += event.text;
        return emit(event);
      }),
    );
    if (!answer.ok) return sendError(res, answer.error, wire);
    const a = answer.value;
    const toolCalls = calls.calls();
    const message = {
      role: 'assistant',
      // OpenAI's: null when the turn is only tool calls.
      content: a.text === '' && toolCalls.length > 0 ? null : a.text,
      refusal: null,
      ...(reasoning !== '' ? { reasoning_content: reasoning } : {}),
      ...(toolCalls.length > 0 ? { tool_calls: openaiToolCalls(toolCalls) } : {}),
    };
    sendJson(res, 200, {
      id,
      object: 'chat.completion',
      created,
      model: a.model,
      choices: [{ index: 0, message, logprobs: null, finish_reason: openaiFinishReason(a.finishReason) }],
      ...(a.usage ? { usage: openaiUsage(a.usage) } : {}),
    });
    return;
  }

  const includeUsage = wire.stream_options?.include_usage === true;
  let model = chat.data.model;
  let usage: ReturnType<typeof openaiUsage> | null = null;
  let headersSent = false;
  let ended = false;
  // A full socket (a slow client) holds the answer back: the upstream read waits with it.
  const stream = new StreamedResponse(res);
  const send = (text: string): void | Promise<void> => (stream.write(text) ? undefined : stream.drained());
  const chunkText = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...extra })}\n\n`;
  const chunk = (choices: unknown[]) => send(chunkText(choices));
  // A text chunk is written as JSON.stringify would write it, from a prefix and suffix made once
  // per answer (at its start, when the model is known) around the text: no object and no
  // whole-chunk serialization per chunk (issue #8).
  let textChunk: [prefix: string, suffix: string] | undefined;
  await run((event) => {
    if (ended || res.destroyed) return;
    if (!headersSent) {
      // Headers wait for the first event: a refusal (every key busy, unknown model) is then a
      // real HTTP status with retry-after rather than a 200 stream carrying an error.
      if (event.type === 'error') {
        ended = true;
        return sendError(res, event, wire);
      }
      headersSent = true;
      res.writeHead(200, SSE_HEADERS);
    }
    switch (event.type) {
      case 'start': {
        model = event.model;
        const sample = chunkText([{ index: 0, delta: { content: TEXT_MARK }, logprobs: null, finish_reason: null }]);
        const at = sample.lastIndexOf(TEXT_MARK_JSON);
        textChunk = [sample.slice(0, at), sample.slice(at + TEXT_MARK_JSON.length)];
        return chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
      }
      case 'delta':
        return textChunk
          ? send(textChunk[0] + JSON.stringify(event.text) + textChunk[1])
          : chunk([{ index: 0, delta: { content: event.text }, logprobs: null, finish_reason: null }]);
      case 'reasoning':
        // As DeepSeek and other OpenAI-compatible servers send thinking text; the openai client keeps unknown delta fields.
        return chunk([{ index: 0, delta: { reasoning_content: event.text }, logprobs: null, finish_reason: null }]);
      case 'tool_call_delta': {
        // As OpenAI streams a call: its first chunk with id, type and name (arguments ''), then argument fragments by index.
        const fragment = { index: event.index, function: { arguments: event.argumentsDelta } };
        if (event.id === undefined && event.name === undefined) return chunk([{ index: 0, delta: { tool_calls: [fragment] }, logprobs: null, finish_reason: null }]);
        const opening = chunkText([
          { index: 0, delta: { tool_calls: [{ index: event.index, id: event.id ?? '', type: 'function', function: { name: event.name ?? '', arguments: '' } }] }, logprobs: null, finish_reason: null },
        ]);
        return send(event.argumentsDelta === '' ? opening : opening + chunkText([{ index: 0, delta: { tool_calls: [fragment] }, logprobs: null, finish_reason: null }]));
      }
      case 'usage':
        usage = openaiUsage(event.usage);
        return;
      case 'done': {
        ended = true;
        // The last chunks and the end in one write.
        const finish = chunkText([{ index: 0, delta: {}, logprobs: null, finish_reason: openaiFinishReason(event.finishReason) }]);
        res.end(`${finish}${includeUsage && usage ? chunkText([], { usage }) : ''}data: [DONE]\n\n`);
        return;
      }
      case 'error':
        // OpenAI's own mid-stream error shape; the openai SDK raises it as an APIError.
        ended = true;
        return void res.end(`data: ${JSON.stringify(openaiError(event.message, OPENAI_ERROR_OF[event.code].type, event.code))}\n\n`);
      default:
        return;
    }
  });
  if (ended || res.destroyed) return;
  // The engine ended without done or error (it never does; an empty answer still closes properly).
  if (!headersSent) res.writeHead(200, SSE_HEADERS);
  res.end('data: [DONE]\n\n');
}

/** Stands for the text in a sample chunk; JSON.stringify writes it as TEXT_MARK_JSON, which no other field of a chunk can hold. */
const TEXT_MARK = '\u0001';
const TEXT_MARK_JSON = JSON.stringify(TEXT_MARK);

// No `connection` header: Node keeps the connection alive by itself, and an explicit keep-alive
// overrode a client's `Connection: close` (the socket stayed open after the answer).
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' };

function sendRefusal(res: ServerResponse, refusal: { param: string; message: string }): void {
  sendJson(res, 400, openaiError(refusal.message, 'invalid_request_error', 'invalid_value', refusal.param));
}

/** A field a refusal names, `(field topP)`, in the gateway's and adapters' words (see Dispatcher failureFor). */
const NAMED_FIELD = /\(field ([A-Za-z0-9_.[\]]+)\)/;

function sendError(res: ServerResponse, event: ErrorEvent, wire: OpenAIChatRequest): void {
  const { status, type } = OPENAI_ERROR_OF[event.code];
  let message = event.message;
  let param: string | null = null;
  // A request refused for a field (a capability the model lacks, a field the provider cannot
  // take) names it as the /v1 body does, in the message and in `param`.
  const named = event.code === 'bad_request' ? NAMED_FIELD.exec(message) : null;
  if (named) {
    param = wireField(named[1]!, wire);
    message = message.replace(NAMED_FIELD, `(field ${param})`);
  }
  sendJson(res, status, openaiError(message, type, event.code === 'not_found' ? 'model_not_found' : event.code, param), retryAfterHeaders(retryAfterMsOf(event)));
}

/** A whole answer's tool calls from their streamed fragments, by index. */
class ToolCallAssembler {
  private readonly byIndex = new Map<number, ToolCall>();

  add(event: Extract<StreamEvent, { type: 'tool_call_delta' }>): void {
    const call = this.byIndex.get(event.index);
    if (!call) this.byIndex.set(event.index, { id: event.id ?? '', name: event.name ?? '', arguments: event.argumentsDelta });
    else {
      if (event.id) call.id = event.id;
      if (event.name) call.name = event.name;
      call.arguments += event.argumentsDelta;
    }
  }

  calls(): ToolCall[] {
    return [...this.byIndex.entries()].sort(([a], [b]) => a - b).map(([, call]) => call);
  }
}
