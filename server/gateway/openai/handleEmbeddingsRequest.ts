import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthUser } from '../../auth/tokens';
import type { PooledCallFailure } from '../../dispatch/pooledCall';
import type { GatewayDeps } from '../context';
import { embedTexts } from '../embeddings/embedTexts';
import { retryAfterHeaders, retryAfterMsOf } from '../gatewayFailure';
import { BodyTooLargeError, readBody, sendJson } from '../http/readBody';
import { MAX_WAIT_HEADER, MAX_WAIT_HEADER_REFUSAL, maxWaitOf } from '../http/maxWaitHeader';
import { base64Embedding, readOpenAIEmbeddingsRequest } from './openaiEmbeddingsWire';
import { OPENAI_ERROR_OF, openaiError } from './openaiWire';

/**
 * `POST /v1/embeddings` (issue 21): OpenAI's wire in and out, served by embedTexts (key pools,
 * limits, ledger). The official openai client's `embeddings.create` asks for base64 unless told
 * otherwise and decodes it; both encodings are answered.
 */
export async function handleEmbeddingsRequest(req: IncomingMessage, res: ServerResponse, user: AuthUser, requestId: string, deps: GatewayDeps, bodyLimit: number): Promise<void> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readBody(req, res, bodyLimit));
  } catch (error) {
    if (error instanceof BodyTooLargeError) sendJson(res, 413, openaiError(error.message, 'invalid_request_error', 'request_too_large'));
    else sendJson(res, 400, openaiError('body must be JSON', 'invalid_request_error', 'invalid_json'));
    return;
  }
  const read = readOpenAIEmbeddingsRequest(raw);
  if (!read.ok) return sendJson(res, 400, openaiError(read.refusal.message, 'invalid_request_error', 'invalid_value', read.refusal.param));
  const maxWait = maxWaitOf(req);
  if (maxWait === null) return sendJson(res, 400, openaiError(MAX_WAIT_HEADER_REFUSAL, 'invalid_request_error', 'invalid_header', MAX_WAIT_HEADER));
  if (!deps.calls) return sendJson(res, 503, openaiError('embeddings are not served by this gateway', 'server_error', 'no_keys'));
  const { request, wire } = read;

  const upstream = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) upstream.abort();
  });
  const result = await embedTexts(deps.calls, {
    model: request.model,
    inputs: typeof request.input === 'string' ? [request.input] : request.input,
    ...(request.dimensions !== undefined ? { dimensions: request.dimensions } : {}),
    userId: user.id,
    signal: upstream.signal,
    requestId,
    ...(maxWait !== undefined ? { maxWaitMs: maxWait } : {}),
  });
  if (res.destroyed) return;
  if (!result.ok) return sendFailure(res, result);
  const base64 = wire.encoding_format === 'base64';
  sendJson(res, 200, {
    object: 'list',
    data: result.vectors.map((vector, index) => ({ object: 'embedding', index, embedding: base64 ? base64Embedding(vector) : vector })),
    model: result.model.id,
    usage: { prompt_tokens: result.usage.inputTokens, total_tokens: result.usage.inputTokens },
  });
}

/** A field a refusal names, `(field dimensions)` (see Dispatcher failureFor and call). */
const NAMED_FIELD = /\(field ([A-Za-z0-9_.[\]]+)\)/;

function sendFailure(res: ServerResponse, failure: PooledCallFailure): void {
  const { status, type } = OPENAI_ERROR_OF[failure.code];
  const param = failure.code === 'not_found' ? 'model' : failure.code === 'bad_request' ? (NAMED_FIELD.exec(failure.message)?.[1] ?? null) : null;
  const code = failure.code === 'not_found' ? 'model_not_found' : failure.code;
  sendJson(res, status, openaiError(failure.message, type, code, param), retryAfterHeaders(retryAfterMsOf(failure)));
}
