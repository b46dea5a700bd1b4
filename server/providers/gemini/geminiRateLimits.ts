import { countOf, limitsOf, windowOf, type StatedLimits } from '../http/rateLimitHeaders';
import { parseProtoDuration } from '../http/retryAfter';
import type { GeminiStatus } from './geminiApi';

/**
 * Gemini sends no rate-limit headers; its 429 RESOURCE_EXHAUSTED names the quota it hit in a
 * QuotaFailure (`quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"`,
 * `quotaValue: "10"`) beside a RetryInfo (`retryDelay: "38s"`). A per-minute requests or tokens
 * quota is the key's RPM / TPM, used up until the retry delay (issue 22). Per-day quotas are
 * not a minute's pace: they cool the key as quota_exhausted and teach nothing here.
 */
export function readGeminiQuotaLimits(error: GeminiStatus, at: number): StatedLimits | undefined {
  const details = error.details ?? [];
  const delay = details.find((d) => d.retryDelay)?.retryDelay;
  const resetMs = delay ? parseProtoDuration(delay) : undefined;
  let requests: ReturnType<typeof windowOf>;
  let tokens: ReturnType<typeof windowOf>;
  for (const violation of details.flatMap((d) => d.violations ?? [])) {
    const id = violation.quotaId ?? '';
    if (!/PerMinute/i.test(id)) continue;
    const value = countOf(violation.quotaValue === null || violation.quotaValue === undefined ? undefined : String(violation.quotaValue));
    const window = windowOf(value, 0, resetMs);
    if (/Tokens/i.test(id)) tokens ??= window;
    else if (/Requests/i.test(id)) requests ??= window;
  }
  return limitsOf(requests, tokens, at);
}
