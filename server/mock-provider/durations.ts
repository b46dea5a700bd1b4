/**
 * Go's time.Duration.String(), which OpenAI writes in `x-ratelimit-reset-*`: "6m0s", "1.5s", "20ms".
 * Sub-millisecond precision is dropped: the mock counts in milliseconds.
 */
export function formatGoDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms));
  if (total === 0) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const seconds = trimDecimal((total % 60_000) / 1000);
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/** Protobuf Duration in JSON, as Google writes `RetryInfo.retryDelay`: "7s", "0.5s". */
export function formatProtoDuration(seconds: number): string {
  return `${trimDecimal(Math.max(0, seconds))}s`;
}

/** `retry-after` in whole seconds, rounded up so a client that obeys it is never early. */
export function retryAfterHeader(ms: number): string {
  return String(Math.max(0, Math.ceil(ms / 1000)));
}

function trimDecimal(value: number): string {
  return String(Math.round(value * 1000) / 1000);
}
