const WINDOW_MS = 60_000;

/** What a provider reports about a key's request window. */
export interface RateWindow {
  limit: number;
  remaining: number;
  /** Until one more request would be accepted (the oldest in the window ages out); 0 if one would be now. */
  retryAfterMs: number;
  /** Until the window is empty again ("resets to its initial state", OpenAI's wording). */
  resetMs: number;
}

export type RpmVerdict = { allowed: true; window: RateWindow } | { allowed: false; window: RateWindow };

/**
 * Requests per minute per key over a sliding 60 s window (an exact log, as the limits used in
 * tests and demos are small). `clock` is injectable so tests move time instead of waiting.
 */
export class RpmLimiter {
  private readonly logs = new Map<string, number[]>();

  constructor(
    private limit: number | undefined,
    private readonly clock: () => number,
  ) {}

  setLimit(limit: number | undefined): void {
    this.limit = limit;
    this.logs.clear();
  }

  get rpm(): number | undefined {
    return this.limit;
  }

  /** Records the request if the key has room; undefined when there is no limit at all. */
  hit(fingerprint: string): RpmVerdict | undefined {
    const limit = this.limit;
    if (limit === undefined) return undefined;
    const now = this.clock();
    let log = this.logs.get(fingerprint);
    if (!log) this.logs.set(fingerprint, (log = []));
    while (log.length > 0 && (log[0] as number) <= now - WINDOW_MS) log.shift();
    const allowed = log.length < limit;
    if (allowed) log.push(now);
    const oldest = log[0] ?? now;
    const newest = log[log.length - 1] ?? now;
    const window: RateWindow = {
      limit,
      remaining: Math.max(0, limit - log.length),
      retryAfterMs: allowed || log.length === 0 ? 0 : Math.max(0, oldest + WINDOW_MS - now),
      resetMs: log.length === 0 ? 0 : Math.max(0, newest + WINDOW_MS - now),
    };
    return { allowed, window };
  }

  reset(): void {
    this.logs.clear();
  }
}
