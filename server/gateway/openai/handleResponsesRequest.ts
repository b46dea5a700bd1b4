import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerToken, refusalMessage, type AuthUser } from '../../auth/tokens';
import { checkPrompt } from '../../business/checkPrompt';
import { ESTIMATED_BYTES_PER_TOKEN, promptTokensAtMost } from '../../business/countPromptTokens';
import type { ResolvedModel } from '../../business/types';
import type { PooledAttempt, PooledAnswer } from '../../dispatch/pooledCall';
import { withoutKey } from '../../providers/http/KeyEchoGuard';
import { postUpstream } from '../../providers/http/postUpstream';
import { readAnswerBody, sharedUpstreamHttp, type UpstreamHttp } from '../../providers/http/UpstreamHttp';
import { ProviderError } from '../../providers/ProviderError';
import { PROVIDER_SPECS } from '../../providers/registry';
import { StreamedResponse } from '../../streams/StreamedResponse';
import type { GatewayDeps } from '../context';
import { retryAfterHeaders, retryAfterMsOf } from '../gatewayFailure';
import { BodyTooLargeError, readBody, sendJson } from '../http/readBody';
import { MAX_WAIT_HEADER, MAX_WAIT_HEADER_REFUSAL, maxWaitOf } from '../http/maxWaitHeader';
import { OPENAI_ERROR_OF, openaiError } from './openaiWire';
import { relayResponsesStream } from './relayResponsesStream';
import { promptMessagesOf, readResponsesRequest, upstreamResponsesBody, usageOfResponse } from './responsesWire';

export interface ResponsesHandlerOptions {
  deps: GatewayDeps;
  bodyLimitOf(req: IncomingMessage): number;
  /** The connection pool to the providers; default the process-wide one (the chat adapters'). */
  http?: UpstreamHttp;
}

/** `/v1/responses`: POST only, with the user's token; true (the path is ours) whatever the outcome. */
export async function handleResponsesRoute(req: IncomingMessage, res: ServerResponse, requestId: string, options: ResponsesHandlerOptions): Promise<true> {
  if (req.method !== 'POST') {
    sendJson(res, 405, openaiError('use POST /v1/responses', 'invalid_request_error', 'method_not_allowed'), { allow: 'POST' });
    return true;
  }
  const verified = await options.deps.tokens.verify(bearerToken(req.headers.authorization));
  if (!verified.ok) sendJson(res, 401, openaiError(refusalMessage(verified.reason), 'authentication_error', 'invalid_api_key'));
  else await handleResponsesRequest(req, res, verified.user, requestId, options);
  return true;
}

/**
 * `POST /v1/responses` (issue 21): OpenAI's Responses API passed through to the providers that
 * have one (ProviderSpec.responses: OpenAI, xAI, Groq), so `openai.responses.create()` and
 * `responses.stream()` work with Keyrack's base URL and the user's JWT. The body is checked at
 * the edge (responsesWire.ts: every field carried or refused with a 400 naming it), the model
 * resolved in the catalog and sent under its upstream id, the prompt held to the prompt limits,
 * and the call made through the pooled-call core (key picks, cooldowns from the provider's
 * headers, another key before the answer started, BYOK keys, per-user limits, the budget's
 * hold, usage and cost in the ledger). The answer is the provider's: the whole JSON, or its SSE
 * events relayed as they come, with `model` the catalog's id as /v1/chat/completions answers.
 */
export async function handleResponsesRequest(req: IncomingMessage, res: ServerResponse, user: AuthUser, requestId: string, options: ResponsesHandlerOptions): Promise<void> {
  const { deps } = options;
  let raw: unknown;
  try {
    raw = JSON.parse(await readBody(req, res, options.bodyLimitOf(req)));
  } catch (error) {
    if (error instanceof BodyTooLargeError) sendJson(res, 413, openaiError(error.message, 'invalid_request_error', 'request_too_large'));
    else sendJson(res, 400, openaiError('body must be JSON', 'invalid_request_error', 'invalid_json'));
    return;
  }
  const read = readResponsesRequest(raw);
  if (!read.ok) return sendJson(res, 400, openaiError(read.refusal.message, 'invalid_request_error', 'invalid_value', read.refusal.param));
  const maxWait = maxWaitOf(req);
  if (maxWait === null) return sendJson(res, 400, openaiError(MAX_WAIT_HEADER_REFUSAL, 'invalid_request_error', 'invalid_header', MAX_WAIT_HEADER));
  const { wire, body } = read;

  const calls = deps.calls;
  const business = deps.domain?.business;
  if (!calls || !business) return sendJson(res, 503, openaiError('the Responses API is not available on this gateway', 'server_error', 'no_keys'));

  const messages = promptMessagesOf(wire);
  const prompt = await checkPrompt(messages, await business.getSettings());
  if (prompt.status === 'refused') return sendJson(res, 400, openaiError(prompt.message, 'invalid_request_error', 'prompt_too_long', 'input'));

  // The client going away aborts the upstream call.
  const upstream = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) upstream.abort();
  });
  const http = options.http ?? sharedUpstreamHttp();
  const streamed = wire.stream === true;
  let producedBytes = 0;
  /** Set once the answer's headers went out (a stream's first event): a failure is then an `error` event. */
  let stream = null as StreamedResponse | null;
  /** Events relayed: OpenAI numbers them from 0, so the next one's `sequence_number`. */
  let events = 0;
  /** The provider's own `error` event was relayed: the client knows, and is not told twice. */
  let relayedError = false;

  const attempt = async ({ ctx, model, started }: PooledAttempt): Promise<PooledAnswer<string | null>> => {
    const spec = PROVIDER_SPECS[model.provider].responses!;
    const response = await postUpstream(http, {
      provider: model.provider,
      url: `${ctx.baseUrl}/responses`,
      headers: { authorization: `Bearer ${ctx.apiKey}` },
      body: upstreamResponsesBody(body, model.upstreamModel, spec.storesByDefault),
      ctx,
      stream: streamed,
    });
    if (!streamed) {
      // The provider's answer as it came, but never with the key in it (see KeyEchoGuard).
      const answer = parseAnswer(withoutKey(await readAnswerBody(response, ctx.apiKey), ctx.apiKey));
      answer.model = model.id;
      return { value: JSON.stringify(answer), usage: usageOfResponse(answer) };
    }
    started();
    res.writeHead(200, SSE_HEADERS);
    const out = (stream = new StreamedResponse(res));
    const relayed = await relayResponsesStream(response.body, ctx.apiKey, model.id, {
      // A full socket (a slow client) holds the upstream read back.
      write: (whole) => {
        // Whole events: the key cannot straddle two of them.
        const frame = withoutKey(whole, ctx.apiKey);
        events += 1;
        if (frame.startsWith(ERROR_FRAME)) relayedError = true;
        return out.write(frame) ? undefined : out.drained();
      },
      produced: (bytes) => void (producedBytes += bytes),
    });
    return { value: null, usage: relayed.usage };
  };

  const result = await calls.call<string | null>({
    model: wire.model,
    kind: 'chat',
    userId: user.id,
    signal: upstream.signal,
    requestId,
    unsupported: noResponsesApi,
    ...(maxWait !== undefined ? { maxWaitMs: maxWait } : {}),
    bound: { inputTokensAtMost: promptTokensAtMost(messages), ...(wire.max_output_tokens ? { outputTokensAtMost: wire.max_output_tokens } : {}) },
    estimatedInputTokens: prompt.promptTokens,
    producedOutputTokens: () => Math.ceil(producedBytes / ESTIMATED_BYTES_PER_TOKEN),
    attempt,
  });

  if (result.ok) {
    if (stream) stream.end();
    else if (!res.destroyed) sendRaw(res, 200, result.value ?? '{}');
    return;
  }
  if (res.destroyed) return;
  const { status, type } = OPENAI_ERROR_OF[result.code];
  const code = result.code === 'not_found' ? 'model_not_found' : result.code;
  if (!stream) {
    // A refusal for a field names it (`(field model)` for a model without a Responses API, or the provider's `param`).
    const param = result.code === 'bad_request' ? (NAMED_FIELD.exec(result.message)?.[1] ?? null) : result.code === 'not_found' ? 'model' : null;
    return sendJson(res, status, openaiError(result.message, type, code, param), retryAfterHeaders(retryAfterMsOf(result)));
  }
  // The answer had started: OpenAI's own mid-stream `error` event, numbered after the last one relayed.
  if (relayedError) return stream.end();
  stream.end(`event: error\ndata: ${JSON.stringify({ type: 'error', code, message: result.message, param: null, sequence_number: events })}\n\n`);
}

/** A model whose provider has no Responses API: refused as a 400 naming `model` before any key is leased. */
function noResponsesApi(model: ResolvedModel): string | null {
  return PROVIDER_SPECS[model.provider].responses ? null : `provider ${model.provider} (model ${model.id}) has no Responses API; use /v1/chat/completions`;
}

function parseAnswer(text: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // Below.
  }
  throw new ProviderError({ kind: 'transient', message: 'the Responses answer is not a JSON object', providerCode: 'bad_answer' });
}

function sendRaw(res: ServerResponse, status: number, json: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
  res.end(json);
}

/** The field a refusal names, `(field model)`: the core's words (CORE-API.md) and the Dispatcher's. */
const NAMED_FIELD = /\(field ([A-Za-z0-9_.[\]]+)\)/;

const ERROR_FRAME = 'event: error\n';

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' };
