import { ProviderError, type ProviderErrorKind } from '../ProviderError';
import { safeParseJson } from '../http/parseJson';
import { headersGetter } from '../http/rateLimitHeaders';
import { retryAfterFromRateLimitHeaders, retryAfterFromStandardHeaders } from '../http/retryAfter';
import { upstreamCode, upstreamErrorMessage, upstreamParam } from '../http/upstreamErrorMessage';
import type { ProviderSpec } from '../registry';
import { readOpenAICompatibleLimits } from './openAIRateLimits';
import { openaiErrorBodySchema, type OpenAIChunk } from './openaiChatApi';

/**
 * Codes that mean "this account has no money or quota left": retrying on it will not help.
 * OpenAI: "429 - You exceeded your current quota, please check your plan and billing details"
 * (type/code `insufficient_quota`); its billing codes (`billing_hard_limit_reached`,
 * `credit_balance_exhausted`, `*_spend_limit_exceeded`, `organization_usage_limit_exceeded`)
 * "will not restore API access" when retried. Kimi (Moonshot): 403 `exceeded_current_quota_error`
 * ("Your account ... is suspended, please check your plan and billing details").
 */
const QUOTA_CODES = new Set([
  'insufficient_quota',
  'billing_hard_limit_reached',
  'billing_not_active',
  'credit_balance_exhausted',
  'organization_spend_limit_exceeded',
  'project_spend_limit_exceeded',
  'organization_usage_limit_exceeded',
  'exceeded_current_quota_error',
  'insufficient_balance',
]);
/** DeepSeek: "402 - Insufficient Balance: You have run out of balance". */
const QUOTA_MESSAGE = /insufficient[ _]balance|exceeded your current quota|credit balance|suspended due to insufficient|out of credits/i;

const REJECTED_CODES = new Set(['invalid_api_key', 'invalid_authentication', 'invalid_authentication_error', 'account_deactivated', 'access_terminated', 'permission_denied']);
const RATE_CODES = new Set(['rate_limit_exceeded', 'rate_limit_error', 'tokens', 'requests', 'slow_down', 'rate_limit_reached_error']);
const TRANSIENT_CODES = new Set(['server_error', 'service_unavailable', 'engine_overloaded_error', 'overloaded', 'internal_error', 'timeout']);

interface ErrorFields {
  message: string | null;
  /** Lower-cased, for classification only. */
  codes: string[];
  /** As sent: what is kept and logged, through upstreamCode() (lower-casing an encoded key hides it from the check, not from a reader). */
  given: string[];
  param: string | null;
}

function fieldsOf(body: { error?: unknown; message?: string | null; type?: string | null; code?: string | number | null }): ErrorFields {
  const error = body.error;
  if (typeof error === 'string') return { message: error, codes: [], given: [], param: null };
  const e = (error ?? {}) as { message?: string | null; type?: string | null; code?: string | number | null; param?: string | null };
  const given = [e.code, e.type, body.code, body.type].filter((c): c is string | number => c !== null && c !== undefined && c !== '').map(String);
  return { message: e.message ?? body.message ?? null, codes: given.map((c) => c.toLowerCase()), given, param: e.param ?? null };
}

/** The fields of a ProviderError taken from upstream, each cleared of the key (issue 24.5). */
function upstreamDetail(fields: ErrorFields, apiKey: string): { providerCode?: string; param?: string } {
  const providerCode = upstreamCode(fields.given[0], apiKey);
  const param = upstreamParam(fields.param, apiKey);
  return { ...(providerCode !== undefined ? { providerCode } : {}), ...(param !== undefined ? { param } : {}) };
}

interface ClassifyInput {
  spec: ProviderSpec;
  status: number;
  headers: Headers;
  bodyText: string;
  apiKey: string;
  now: number;
}

/** Classifies a non-2xx answer of an OpenAI-compatible provider. */
export function classifyOpenAIError({ spec, status, headers, bodyText, apiKey, now }: ClassifyInput): ProviderError {
  const parsed = safeParseJson(bodyText, openaiErrorBodySchema);
  const fields: ErrorFields = parsed.success ? fieldsOf(parsed.value) : { message: bodyText.slice(0, 200), codes: [], given: [], param: null };
  const { message, codes } = fields;
  const has = (set: Set<string>) => codes.some((c) => set.has(c));
  const retryAfterMs = retryAfterFromStandardHeaders(headers, now) ?? retryAfterFromRateLimitHeaders(headers);
  // An error answer states the windows too (a 429's are the ones that matter most): issue 22.
  const limits = readOpenAICompatibleLimits(spec, headersGetter(headers), now);

  let kind: ProviderErrorKind;
  if (has(QUOTA_CODES) || status === 402 || QUOTA_MESSAGE.test(message ?? '')) kind = 'quota_exhausted';
  else if (status === 401 || status === 403 || has(REJECTED_CODES)) kind = 'rejected';
  else if (status === 400 && spec.rejectedKeyMessage?.test(message ?? '')) kind = 'rejected';
  else if (status === 429) kind = has(TRANSIENT_CODES) ? 'transient' : 'rate_limited';
  else if (status === 408 || status === 409 || status >= 500) kind = 'transient';
  else kind = 'bad_request';

  return new ProviderError({
    kind,
    status,
    message: upstreamErrorMessage(spec.id, status, message, apiKey),
    ...upstreamDetail(fields, apiKey),
    ...(retryAfterMs !== undefined && (kind === 'rate_limited' || kind === 'transient') ? { retryAfterMs } : {}),
    ...(limits ? { limits } : {}),
  });
}

/** Classifies `data: {"error": ...}` inside a 200 stream, which has no status code to go by. */
export function classifyOpenAIStreamError(spec: ProviderSpec, error: NonNullable<OpenAIChunk['error']>, apiKey: string): ProviderError {
  const fields = fieldsOf({ error });
  const { message, codes } = fields;
  const has = (set: Set<string>) => codes.some((c) => set.has(c));
  const kind: ProviderErrorKind = has(QUOTA_CODES) || QUOTA_MESSAGE.test(message ?? '')
    ? 'quota_exhausted'
    : has(REJECTED_CODES)
      ? 'rejected'
      : has(RATE_CODES)
        ? 'rate_limited'
        : codes.includes('invalid_request_error')
          ? 'bad_request'
          : 'transient';
  return new ProviderError({
    kind,
    message: upstreamErrorMessage(spec.id, undefined, message, apiKey),
    ...upstreamDetail(fields, apiKey),
  });
}
