import { ProviderError, type ProviderErrorKind } from '../ProviderError';
import { safeParseJson } from '../http/parseJson';
import { parseProtoDuration, retryAfterFromStandardHeaders } from '../http/retryAfter';
import { upstreamCode, upstreamErrorMessage, upstreamParam } from '../http/upstreamErrorMessage';
import { readGeminiQuotaLimits } from './geminiRateLimits';
import { geminiErrorBodySchema, type GeminiStatus } from './geminiApi';

/**
 * Gemini errors are google.rpc.Status. A bad key is `400 INVALID_ARGUMENT` with an ErrorInfo
 * whose reason is `API_KEY_INVALID` ("API key not valid. Please pass a valid API key.").
 * `429 RESOURCE_EXHAUSTED` carries a RetryInfo (`"retryDelay": "38s"`) and a QuotaFailure
 * naming the quota: a `...PerDay...` quotaId (e.g. `GenerateRequestsPerDayPerProjectPerModel-FreeTier`)
 * will not refill until the daily reset, so it counts as quota_exhausted, not a rate limit.
 */
function kindOf(status: number | undefined, error: GeminiStatus): ProviderErrorKind {
  const reasons = (error.details ?? []).map((d) => d.reason ?? '');
  const message = error.message ?? '';
  const httpStatus = status ?? error.code ?? undefined;
  if (reasons.includes('API_KEY_INVALID') || /api key not valid|api key expired/i.test(message)) return 'rejected';
  if (httpStatus === 401 || httpStatus === 403 || error.status === 'PERMISSION_DENIED' || error.status === 'UNAUTHENTICATED') return 'rejected';
  if (httpStatus === 402) return 'quota_exhausted';
  if (httpStatus === 429 || error.status === 'RESOURCE_EXHAUSTED') {
    const quotaIds = (error.details ?? []).flatMap((d) => d.violations ?? []).map((v) => `${v.quotaId ?? ''} ${v.quotaMetric ?? ''}`);
    return quotaIds.some((id) => /PerDay/i.test(id)) ? 'quota_exhausted' : 'rate_limited';
  }
  if (httpStatus === undefined) return 'transient';
  return httpStatus >= 500 || httpStatus === 408 || error.status === 'UNAVAILABLE' || error.status === 'DEADLINE_EXCEEDED' ? 'transient' : 'bad_request';
}

function retryDelayOf(error: GeminiStatus): number | undefined {
  const delay = error.details?.find((d) => d.retryDelay)?.retryDelay;
  return delay ? parseProtoDuration(delay) : undefined;
}

function build(status: number | undefined, error: GeminiStatus, apiKey: string, headerRetry: number | undefined, now?: number): ProviderError {
  const kind = kindOf(status, error);
  // A per-minute quota it hit is the key's pace (issue 22); a stream error has no time to go by.
  const limits = now !== undefined && kind === 'rate_limited' ? readGeminiQuotaLimits(error, now) : undefined;
  const retryAfterMs = retryDelayOf(error) ?? headerRetry;
  const reason = (error.details ?? []).map((d) => d.reason).find(Boolean);
  const providerCode = upstreamCode(reason ?? error.status, apiKey);
  // google.rpc.BadRequest names the field: `fieldViolations[].field` (`contents[0].parts`).
  const param = upstreamParam(error.details?.flatMap((d) => d.fieldViolations ?? []).find((v) => v.field)?.field, apiKey);
  return new ProviderError({
    kind,
    ...(status !== undefined ? { status } : {}),
    message: upstreamErrorMessage('google', status, error.message, apiKey),
    ...(providerCode ? { providerCode } : {}),
    ...(param ? { param } : {}),
    ...(retryAfterMs !== undefined && kind !== 'rejected' && kind !== 'bad_request' ? { retryAfterMs } : {}),
    ...(limits ? { limits } : {}),
  });
}

interface ClassifyInput {
  status: number;
  headers: Headers;
  bodyText: string;
  apiKey: string;
  now: number;
}

export function classifyGeminiError({ status, headers, bodyText, apiKey, now }: ClassifyInput): ProviderError {
  const parsed = safeParseJson(bodyText, geminiErrorBodySchema);
  const error: GeminiStatus = parsed.success
    ? Array.isArray(parsed.value)
      ? (parsed.value[0]?.error ?? {})
      : parsed.value.error
    : { message: bodyText.slice(0, 200) };
  return build(status, error, apiKey, retryAfterFromStandardHeaders(headers, now), now);
}

/** `data: {"error": {...}}` inside a 200 stream. */
export function classifyGeminiStreamError(error: GeminiStatus, apiKey: string): ProviderError {
  return build(undefined, error, apiKey, undefined);
}
