import { readOpenAIStyleLimits, type HeaderGetter, type StatedLimits } from '../http/rateLimitHeaders';
import type { ProviderSpec } from '../registry';

/**
 * The `x-ratelimit-*` headers of an OpenAI-compatible provider, with its quirks (issue 22).
 * OpenAI, Mistral and xAI state per-minute windows; Groq's requests window is per day.
 * DeepSeek documents no rate-limit headers: its answers teach nothing, which costs nothing.
 */
export function readOpenAICompatibleLimits(spec: ProviderSpec, get: HeaderGetter, at: number): StatedLimits | undefined {
  return readOpenAIStyleLimits(get, at, spec.requestsLimitPerDay ? { requestsPerDay: true } : {});
}
