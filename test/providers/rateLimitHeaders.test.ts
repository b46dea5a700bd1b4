import { describe, expect, it } from 'vitest';
import { classifyAnthropicError } from '../../server/providers/anthropic/classifyAnthropicError';
import { classifyGeminiError } from '../../server/providers/gemini/classifyGeminiError';
import { headersGetter, readAnthropicLimits, readOpenAIStyleLimits } from '../../server/providers/http/rateLimitHeaders';
import { classifyOpenAIError } from '../../server/providers/openai-compatible/classifyOpenAIError';
import { readOpenAICompatibleLimits } from '../../server/providers/openai-compatible/openAIRateLimits';
import { PROVIDER_SPECS } from '../../server/providers/registry';

/** Issue 22, learned limits: each provider's documented rate-limit statements, read into one shape. */

const AT = Date.parse('2025-08-21T12:40:00Z');
const get = (headers: Record<string, string>) => headersGetter(new Headers(headers));

describe('issue 22: rate-limit headers per provider', () => {
  it("OpenAI: the docs' sample values (limit 60 / remaining 59 / reset 1s; 150000 / 149984 / 6m0s)", () => {
    const headers = {
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-limit-tokens': '150000',
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-remaining-tokens': '149984',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-reset-tokens': '6m0s',
    };
    expect(readOpenAICompatibleLimits(PROVIDER_SPECS.openai, get(headers), AT)).toEqual({
      requests: { limit: 60, remaining: 59, resetMs: 1_000 },
      tokens: { limit: 150_000, remaining: 149_984, resetMs: 360_000 },
      at: AT,
    });
  });

  it('Go durations with fractions and milliseconds; Mistral and xAI send the same family', () => {
    const limits = readOpenAIStyleLimits(get({ 'x-ratelimit-limit-requests': '10', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1m30.5s', 'x-ratelimit-reset-tokens': '20ms', 'x-ratelimit-remaining-tokens': '7' }), AT);
    expect(limits).toEqual({ requests: { limit: 10, remaining: 0, resetMs: 90_500 }, tokens: { remaining: 7, resetMs: 20 }, at: AT });
    expect(readOpenAICompatibleLimits(PROVIDER_SPECS.mistral, get({ 'x-ratelimit-limit-requests': '60', 'x-ratelimit-remaining-requests': '12' }), AT)).toEqual({ requests: { limit: 60, remaining: 12 }, at: AT });
  });

  it("Groq: the requests limit is per day, so only its remaining and reset are kept; tokens are per minute", () => {
    const headers = {
      'x-ratelimit-limit-requests': '14400',
      'x-ratelimit-limit-tokens': '18000',
      'x-ratelimit-remaining-requests': '14370',
      'x-ratelimit-remaining-tokens': '17997',
      'x-ratelimit-reset-requests': '2m59.56s',
      'x-ratelimit-reset-tokens': '7.66s',
    };
    expect(readOpenAICompatibleLimits(PROVIDER_SPECS.groq, get(headers), AT)).toEqual({
      requests: { remaining: 14_370, resetMs: 179_560 },
      tokens: { limit: 18_000, remaining: 17_997, resetMs: 7_660 },
      at: AT,
    });
  });

  it('an answer without the headers (DeepSeek) states nothing; nonsense values are not taken', () => {
    expect(readOpenAICompatibleLimits(PROVIDER_SPECS.deepseek, get({ 'content-type': 'application/json' }), AT)).toBeUndefined();
    expect(readOpenAIStyleLimits(get({ 'x-ratelimit-limit-requests': 'lots', 'x-ratelimit-remaining-requests': '-1' }), AT)).toBeUndefined();
    expect(readOpenAIStyleLimits(get({ 'x-ratelimit-limit-requests': '0' }), AT)).toBeUndefined();
  });

  it('Anthropic: RFC 3339 resets; tokens-* is the most restrictive window', () => {
    const headers = {
      'anthropic-ratelimit-input-tokens-limit': '80000',
      'anthropic-ratelimit-input-tokens-remaining': '80000',
      'anthropic-ratelimit-input-tokens-reset': '2025-08-21T12:40:59Z',
      'anthropic-ratelimit-output-tokens-limit': '16000',
      'anthropic-ratelimit-output-tokens-remaining': '16000',
      'anthropic-ratelimit-output-tokens-reset': '2025-08-21T12:41:00Z',
      'anthropic-ratelimit-requests-limit': '1000',
      'anthropic-ratelimit-requests-remaining': '999',
      'anthropic-ratelimit-requests-reset': '2025-08-21T12:40:59Z',
      'anthropic-ratelimit-tokens-limit': '96000',
      'anthropic-ratelimit-tokens-remaining': '95000',
      'anthropic-ratelimit-tokens-reset': '2025-08-21T12:40:30Z',
    };
    expect(readAnthropicLimits(get(headers), AT)).toEqual({
      requests: { limit: 1000, remaining: 999, resetMs: 59_000 },
      tokens: { limit: 96_000, remaining: 95_000, resetMs: 30_000 },
      at: AT,
    });
    // Without tokens-*, the input-tokens window stands for tokens.
    const { 'anthropic-ratelimit-tokens-limit': _l, 'anthropic-ratelimit-tokens-remaining': _r, 'anthropic-ratelimit-tokens-reset': _t, ...inputOnly } = headers;
    expect(readAnthropicLimits(get(inputOnly), AT)?.tokens).toEqual({ limit: 80_000, remaining: 80_000, resetMs: 59_000 });
  });

  it('error answers carry their statements on the ProviderError (OpenAI, Anthropic 429s)', () => {
    const openai = classifyOpenAIError({
      spec: PROVIDER_SPECS.openai,
      status: 429,
      headers: new Headers({ 'x-ratelimit-limit-requests': '3', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '20s' }),
      bodyText: JSON.stringify({ error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } }),
      apiKey: 'sk-test-rate-limit-headers',
      now: AT,
    });
    expect(openai.kind).toBe('rate_limited');
    expect(openai.limits).toEqual({ requests: { limit: 3, remaining: 0, resetMs: 20_000 }, at: AT });
    const anthropic = classifyAnthropicError({
      status: 429,
      headers: new Headers({ 'anthropic-ratelimit-requests-limit': '50', 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': '2025-08-21T12:40:10Z' }),
      bodyText: JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'Number of requests has exceeded your rate limit' } }),
      apiKey: 'sk-test-rate-limit-headers',
      now: AT,
    });
    expect(anthropic.limits).toEqual({ requests: { limit: 50, remaining: 0, resetMs: 10_000 }, at: AT });
  });

  it("Gemini: a 429's per-minute QuotaFailure and RetryInfo; a per-day quota teaches nothing", () => {
    const body = (quotaId: string, retryDelay?: string) =>
      JSON.stringify({
        error: {
          code: 429,
          message: 'You exceeded your current quota, please check your plan and billing details.',
          status: 'RESOURCE_EXHAUSTED',
          details: [
            { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests', quotaId, quotaDimensions: { location: 'global', model: 'gemini-2.0-flash' }, quotaValue: '10' }] },
            ...(retryDelay ? [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay }] : []),
          ],
        },
      });
    const perMinute = classifyGeminiError({ status: 429, headers: new Headers(), bodyText: body('GenerateRequestsPerMinutePerProjectPerModel-FreeTier', '38s'), apiKey: 'sk-test-gemini', now: AT });
    expect(perMinute.kind).toBe('rate_limited');
    expect(perMinute.limits).toEqual({ requests: { limit: 10, remaining: 0, resetMs: 38_000 }, at: AT });
    const tokens = classifyGeminiError({ status: 429, headers: new Headers(), bodyText: body('GenerateContentInputTokensPerModelPerMinute-FreeTier', '7s'), apiKey: 'sk-test-gemini', now: AT });
    expect(tokens.limits).toEqual({ tokens: { limit: 10, remaining: 0, resetMs: 7_000 }, at: AT });
    const perDay = classifyGeminiError({ status: 429, headers: new Headers(), bodyText: body('GenerateRequestsPerDayPerProjectPerModel-FreeTier'), apiKey: 'sk-test-gemini', now: AT });
    expect(perDay.kind).toBe('quota_exhausted');
    expect(perDay.limits).toBeUndefined();
  });
});
