import { createHistogram } from 'node:perf_hooks';
import autocannon from 'autocannon';

/** One target of a load run: what autocannon sends, and to where. */
export interface HttpTarget {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface LoadOptions {
  connections: number;
  durationS: number;
  /** A fixed total rate (autocannon `overallRate`); absent = as fast as the connections go. */
  overallRate?: number;
}

export interface LoadResult {
  /** 2xx answers. */
  ok: number;
  /** Non-2xx answers, socket errors and timeouts. */
  failed: number;
  /** 2xx answers per second over the run. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * Runs autocannon against one target. Latency comes from autocannon's per-response times
 * (hrtime, fractional ms) into a microsecond histogram of our own: autocannon's own histogram
 * records whole milliseconds, too coarse for a 1 ms target. Only 2xx answers count.
 *
 * With `overallRate`, autocannon spreads the rate over the connections and each connection
 * sends its share of every second back to back, so this is "N requests a second, in bursts of
 * `connections` concurrent requests", the same for every target.
 */
export async function runLoad(target: HttpTarget, options: LoadOptions): Promise<LoadResult> {
  const micros = createHistogram({ lowest: 1, highest: 60_000_000, figures: 3 });
  let ok = 0;
  let failed = 0;
  const instance = autocannon({
    url: target.url,
    method: 'POST',
    headers: target.headers,
    body: target.body,
    connections: options.connections,
    duration: options.durationS,
    timeout: 10,
    ...(options.overallRate !== undefined ? { overallRate: options.overallRate } : {}),
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, responseTimeMs: number) => {
    if (status >= 200 && status < 300) {
      ok += 1;
      micros.record(Math.max(1, Math.round(responseTimeMs * 1000)));
    } else failed += 1;
  });
  const result = await instance;
  // autocannon's `errors` already includes its timeouts.
  failed += result.errors;
  return {
    ok,
    failed,
    rps: ok / Math.max(result.duration, 1e-9),
    p50Ms: ok ? micros.percentile(50) / 1000 : Number.NaN,
    p99Ms: ok ? micros.percentile(99) / 1000 : Number.NaN,
  };
}
