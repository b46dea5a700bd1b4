import type { ProviderId } from '../../../shared';
import { classifyAnthropicError } from '../anthropic/classifyAnthropicError';
import { classifyGeminiError } from '../gemini/classifyGeminiError';
import { classifyOpenAIError } from '../openai-compatible/classifyOpenAIError';
import type { ProviderError } from '../ProviderError';
import { PROVIDER_SPECS } from '../registry';
import type { AdapterContext } from '../types';
import { readErrorBody, type UpstreamHttp } from './UpstreamHttp';

/**
 * The provider's error classifier for a non-2xx answer, chosen by its wire format: the same
 * functions the chat adapters use, so a pooled call other than chat (issue 21) reads rate-limit
 * and cooldown headers (`retry-after`, `x-ratelimit-reset-*`, Anthropic's and Gemini's) exactly
 * as chat does, and scrubs the key out of what it keeps.
 */
export function classifyUpstreamError(provider: ProviderId, input: { status: number; headers: Headers; bodyText: string; apiKey: string; now: number }): ProviderError {
  const spec = PROVIDER_SPECS[provider];
  switch (spec.wireFormat) {
    case 'anthropic':
      return classifyAnthropicError(input);
    case 'gemini':
      return classifyGeminiError(input);
    case 'openai':
      return classifyOpenAIError({ spec, ...input });
  }
}

export interface PostUpstreamInit {
  provider: ProviderId;
  /** Full URL: `${ctx.baseUrl}/embeddings`. */
  url: string;
  /** The provider's auth header and any others (content-type is set here). */
  headers: Record<string, string>;
  body: string;
  ctx: AdapterContext;
  /** A streamed answer (SSE): its response headers are held to the attempt's first-byte limit. */
  stream?: boolean;
}

/**
 * POSTs one request over the shared connection pool and returns the 2xx response (its body not
 * yet read: readAnswerBody for a whole answer, readSseEvents / readUpstreamBody for a stream).
 * A non-2xx answer is thrown as the provider's classified ProviderError; network failures and a
 * missed first byte come as UpstreamHttp throws them (transient). What a pooled attempt needs
 * before it calls `started()`.
 */
export async function postUpstream(http: UpstreamHttp, init: PostUpstreamInit): Promise<Response> {
  const { ctx } = init;
  const response = await http.fetch(init.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: init.stream ? 'text/event-stream' : 'application/json', ...init.headers },
    body: init.body,
    signal: ctx.signal,
    apiKey: ctx.apiKey,
    ...(init.stream && ctx.firstByteTimeoutMs !== undefined ? { headersTimeoutMs: ctx.firstByteTimeoutMs } : {}),
  });
  if (!response.ok || !response.body) {
    const bodyText = await readErrorBody(response);
    throw classifyUpstreamError(init.provider, { status: response.status, headers: response.headers, bodyText, apiKey: ctx.apiKey, now: (ctx.now ?? Date.now)() });
  }
  return response;
}
