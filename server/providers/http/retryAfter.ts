/**
 * When a provider says to come back. Each speaks its own dialect; all of them end up as
 * milliseconds from now.
 */

/** `retry-after` (seconds or HTTP date, RFC 9110 §10.2.3) and the non-standard `retry-after-ms`. */
export function retryAfterFromStandardHeaders(headers: Headers, now: number): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms.trim()));
  const value = headers.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Go writes microseconds as "\u00b5s" (micro sign) and also parses "\u03bcs" (Greek mu). Escaped,
 * not typed: one non-ASCII character makes V8 hold the whole bundle's source as a two-byte
 * string (scripts/buildServer.ts).
 */
const GO_UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, '\u00b5s': 0.001, '\u03bcs': 0.001, ns: 0.000001 };

/**
 * Go's time.Duration text, which OpenAI-compatible providers put in `x-ratelimit-reset-*`
 * ("6m0s", "1m30.5s", "20ms", "0.5s"). Undefined for anything else.
 */
export function parseGoDuration(text: string): number | undefined {
  const value = text.trim();
  if (value === '' || !/^(\d+(\.\d+)?(h|ms|us|\u00b5s|\u03bcs|ns|m|s))+$/.test(value)) return undefined;
  let total = 0;
  for (const match of value.matchAll(/(\d+(?:\.\d+)?)(h|ms|us|\u00b5s|\u03bcs|ns|m|s)/g)) {
    total += Number(match[1]) * (GO_UNIT_MS[match[2] as string] ?? 0);
  }
  return Math.ceil(total);
}

/**
 * OpenAI-style `x-ratelimit-remaining-{requests,tokens}` / `x-ratelimit-reset-{requests,tokens}`:
 * the reset of whichever window is empty (the longest, if several are).
 * Docs: "x-ratelimit-reset-requests: 1s — The time until the rate limit (based on requests) resets".
 */
export function retryAfterFromRateLimitHeaders(headers: Headers): number | undefined {
  let longest: number | undefined;
  for (const window of ['requests', 'tokens']) {
    const remaining = headers.get(`x-ratelimit-remaining-${window}`);
    const reset = headers.get(`x-ratelimit-reset-${window}`);
    if (reset === null || (remaining !== null && Number(remaining) > 0)) continue;
    const ms = parseGoDuration(reset) ?? (/^\d+(\.\d+)?$/.test(reset.trim()) ? Number(reset) * 1000 : undefined);
    if (ms !== undefined) longest = Math.max(longest ?? 0, ms);
  }
  return longest;
}

/**
 * Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset` carry an
 * RFC 3339 time; the window that ran out is the one with `-remaining: 0`.
 */
export function retryAfterFromAnthropicHeaders(headers: Headers, now: number): number | undefined {
  let longest: number | undefined;
  for (const window of ['requests', 'tokens', 'input-tokens', 'output-tokens']) {
    const remaining = headers.get(`anthropic-ratelimit-${window}-remaining`);
    const reset = headers.get(`anthropic-ratelimit-${window}-reset`);
    if (reset === null || (remaining !== null && Number(remaining) > 0)) continue;
    const at = Date.parse(reset);
    if (!Number.isNaN(at)) longest = Math.max(longest ?? 0, at - now, 0);
  }
  return longest;
}

/** Protobuf Duration JSON as Google APIs write it in `RetryInfo.retryDelay`: "7s", "0.5s", "38.123s". */
export function parseProtoDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)s$/.exec(text.trim());
  return match ? Math.ceil(Number(match[1]) * 1000) : undefined;
}
