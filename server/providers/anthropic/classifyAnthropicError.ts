import { ProviderError, type ProviderErrorKind } from '../ProviderError';
import { safeParseJson } from '../http/parseJson';
import { headersGetter, readAnthropicLimits } from '../http/rateLimitHeaders';
import { retryAfterFromAnthropicHeaders, retryAfterFromStandardHeaders } from '../http/retryAfter';
import { upstreamCode, upstreamErrorMessage, upstreamParam } from '../http/upstreamErrorMessage';
import { anthropicErrorBodySchema, type anthropicErrorSchema } from './anthropicMessagesApi';
import type { z } from 'zod';

/**
 * Anthropic's error types (docs "Errors"): 400 invalid_request_error, 401 authentication_error,
 * 402 billing_error, 403 permission_error, 404 not_found_error, 413 request_too_large,
 * 429 rate_limit_error, 500 api_error, 529 overloaded_error ("the API is temporarily overloaded").
 * Money running out comes in three shapes: 402 billing_error; 400 invalid_request_error "Your
 * credit balance is too low to access the Anthropic API"; and a 429 rate_limit_error whose
 * `details.error_code` is `enforced_spend_limit_reached` ("Don't retry. Usage pauses until ...
 * the first day of the next month"). A workspace spend limit is a 400 "You have reached your
 * specified API usage limits".
 */
const QUOTA_MESSAGE = /credit balance|spend limit|usage limits?|billing/i;

type AnthropicError = z.infer<typeof anthropicErrorSchema>;

function kindOf(status: number | undefined, error: AnthropicError | null | undefined): ProviderErrorKind {
  const type = error?.type ?? '';
  const message = error?.message ?? '';
  if (type === 'billing_error' || status === 402 || error?.details?.error_code === 'enforced_spend_limit_reached') return 'quota_exhausted';
  if ((type === 'invalid_request_error' || type === 'rate_limit_error' || status === 400) && QUOTA_MESSAGE.test(message)) return 'quota_exhausted';
  if (type === 'authentication_error' || type === 'permission_error' || status === 401 || status === 403) return 'rejected';
  if (type === 'rate_limit_error' || status === 429) return 'rate_limited';
  if (type === 'overloaded_error' || type === 'api_error' || type === 'timeout_error') return 'transient';
  const callersFault = type === 'invalid_request_error' || type === 'not_found_error' || type === 'request_too_large';
  // Inside a 200 stream there is no status: anything but the caller's fault is the provider's trouble.
  if (status === undefined) return callersFault ? 'bad_request' : 'transient';
  return status >= 500 || status === 408 || status === 409 ? 'transient' : 'bad_request';
}

/**
 * Anthropic names the field a validation error is about at the start of its message
 * (`max_tokens: Field required`, `messages.0.content: ...`); there is no `param` field.
 */
const FIELD_PREFIX = /^([A-Za-z_][A-Za-z0-9_.[\]]{0,63}): /;

/** The fields of a ProviderError taken from upstream, each cleared of the key (issue 24.5). */
function upstreamDetail(error: AnthropicError | null | undefined, providerCode: string | null | undefined, apiKey: string): { providerCode?: string; param?: string } {
  const code = upstreamCode(providerCode, apiKey);
  const param = error?.type === 'invalid_request_error' ? upstreamParam(FIELD_PREFIX.exec(error.message ?? '')?.[1], apiKey) : undefined;
  return { ...(code !== undefined ? { providerCode: code } : {}), ...(param !== undefined ? { param } : {}) };
}

interface ClassifyInput {
  status: number;
  headers: Headers;
  bodyText: string;
  apiKey: string;
  now: number;
}

export function classifyAnthropicError({ status, headers, bodyText, apiKey, now }: ClassifyInput): ProviderError {
  const parsed = safeParseJson(bodyText, anthropicErrorBodySchema);
  const error = parsed.success ? parsed.value.error : undefined;
  const kind = kindOf(status, error);
  // Anthropic: "retry-after: the number of seconds to wait"; the -reset headers say when each window refills.
  const retryAfterMs = retryAfterFromStandardHeaders(headers, now) ?? retryAfterFromAnthropicHeaders(headers, now);
  const limits = readAnthropicLimits(headersGetter(headers), now);
  return new ProviderError({
    kind,
    status,
    message: upstreamErrorMessage('anthropic', status, error?.message ?? (parsed.success ? '' : bodyText.slice(0, 200)), apiKey),
    ...upstreamDetail(error, error?.type ? (error.details?.error_code ?? error.type) : undefined, apiKey),
    ...(retryAfterMs !== undefined && (kind === 'rate_limited' || kind === 'transient') ? { retryAfterMs } : {}),
    ...(limits ? { limits } : {}),
  });
}

/** `event: error` inside a 200 stream (overloaded_error is the common one). */
export function classifyAnthropicStreamError(error: AnthropicError, apiKey: string): ProviderError {
  return new ProviderError({
    kind: kindOf(undefined, error),
    message: upstreamErrorMessage('anthropic', undefined, error.message, apiKey),
    ...upstreamDetail(error, error.type, apiKey),
  });
}
