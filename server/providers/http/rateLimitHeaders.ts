import { parseGoDuration } from './retryAfter';

/**
 * What a provider's answer says about the key's rate windows (issue 22, learned limits), in
 * one provider-neutral shape. Every field is optional: providers state different subsets, and
 * a missing one is "not said", never "zero".
 */
export interface StatedWindow {
  /** The most the window allows (requests, or tokens); a positive whole number. */
  limit?: number;
  /** What is left of it after this request. */
  remaining?: number;
  /** Until the window is whole again, from `at`. */
  resetMs?: number;
}

export interface StatedLimits {
  requests?: StatedWindow;
  tokens?: StatedWindow;
  /** When the answer was read (the adapter's clock): `resetMs` counts from here. */
  at: number;
}

/**
 * Reads one response header by its lower-case name. A function rather than a Headers object:
 * the undici transport keeps raw headers and builds a Headers only on demand (headerReader()).
 */
export type HeaderGetter = (name: string) => string | null | undefined;

/** A header's whole, non-negative count ("60", "149984"); undefined for anything else. */
export function countOf(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (!/^\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}

/** A window with at least one field said, else undefined; a limit must be positive to count. */
export function windowOf(limit: number | undefined, remaining: number | undefined, resetMs: number | undefined): StatedWindow | undefined {
  const positiveLimit = limit !== undefined && limit > 0 ? limit : undefined;
  if (positiveLimit === undefined && remaining === undefined) return undefined;
  return {
    ...(positiveLimit !== undefined ? { limit: positiveLimit } : {}),
    ...(remaining !== undefined ? { remaining } : {}),
    ...(resetMs !== undefined ? { resetMs: Math.max(0, resetMs) } : {}),
  };
}

/** Limits when either window was said, else undefined (an answer without the headers costs nothing more). */
export function limitsOf(requests: StatedWindow | undefined, tokens: StatedWindow | undefined, at: number): StatedLimits | undefined {
  if (!requests && !tokens) return undefined;
  return { ...(requests ? { requests } : {}), ...(tokens ? { tokens } : {}), at };
}

/** A Go duration ("6m0s", "1.5s", "20ms") or plain seconds ("20", "0.5"), as some compatible servers write it. */
function resetOf(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  return parseGoDuration(text) ?? (/^\d+(\.\d+)?$/.test(text) ? Math.ceil(Number(text) * 1000) : undefined);
}

export interface OpenAIStyleOptions {
  /**
   * The requests limit is per DAY, not per minute (Groq: "x-ratelimit-limit-requests: Always
   * refers to Requests Per Day (RPD)"): its remaining and reset still say when the key runs dry,
   * but the limit is not taken as the key's RPM.
   */
  requestsPerDay?: boolean;
}

/**
 * OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (docs "Rate limits": limit
 * 60, remaining 59, reset "1s"; tokens 150000 / 149984 / "6m0s"), copied by Groq, Mistral, xAI
 * and others. The reset is "the time until the rate limit resets to its initial state".
 */
export function readOpenAIStyleLimits(get: HeaderGetter, at: number, options: OpenAIStyleOptions = {}): StatedLimits | undefined {
  // Most answers of most providers carry the family or none of it: one look decides.
  const requestsRemaining = get('x-ratelimit-remaining-requests');
  const tokensRemaining = get('x-ratelimit-remaining-tokens');
  const requestsLimit = get('x-ratelimit-limit-requests');
  const tokensLimit = get('x-ratelimit-limit-tokens');
  if (requestsRemaining == null && tokensRemaining == null && requestsLimit == null && tokensLimit == null) return undefined;
  const requests = windowOf(
    options.requestsPerDay ? undefined : countOf(requestsLimit),
    countOf(requestsRemaining),
    resetOf(get('x-ratelimit-reset-requests')),
  );
  const tokens = windowOf(countOf(tokensLimit), countOf(tokensRemaining), resetOf(get('x-ratelimit-reset-tokens')));
  return limitsOf(requests, tokens, at);
}

/**
 * Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
 * the reset "in RFC 3339 format". `tokens-*` is "the most restrictive limit currently in
 * effect"; without it the input-tokens window stands for tokens (input dominates a chat's
 * count, and the pool keeps one token window per account).
 */
export function readAnthropicLimits(get: HeaderGetter, at: number): StatedLimits | undefined {
  const requestsLimit = get('anthropic-ratelimit-requests-limit');
  const requestsRemaining = get('anthropic-ratelimit-requests-remaining');
  const tokensLimit = get('anthropic-ratelimit-tokens-limit') ?? get('anthropic-ratelimit-input-tokens-limit');
  if (requestsLimit == null && requestsRemaining == null && tokensLimit == null) return undefined;
  const resetAt = (value: string | null | undefined) => {
    if (value === null || value === undefined) return undefined;
    const time = Date.parse(value);
    return Number.isNaN(time) ? undefined : time - at;
  };
  const requests = windowOf(countOf(requestsLimit), countOf(requestsRemaining), resetAt(get('anthropic-ratelimit-requests-reset')));
  const family = get('anthropic-ratelimit-tokens-limit') != null ? 'tokens' : 'input-tokens';
  const tokens = windowOf(countOf(tokensLimit), countOf(get(`anthropic-ratelimit-${family}-remaining`)), resetAt(get(`anthropic-ratelimit-${family}-reset`)));
  return limitsOf(requests, tokens, at);
}

/** A getter over a WHATWG Headers (error answers, the fetch transport). */
export function headersGetter(headers: Headers): HeaderGetter {
  return (name) => headers.get(name);
}
