import { createHistogram } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { Pool } from 'undici';

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
  /** Length of the run, seconds. */
  durationS: number;
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
    durationS: result.duration,
    p50Ms: ok ? micros.percentile(50) / 1000 : Number.NaN,
    p99Ms: ok ? micros.percentile(99) / 1000 : Number.NaN,
  };
}

export interface PacedOptions {
  /** Requests per second, one every 1000/ratePerS ms. */
  ratePerS: number;
  durationS: number;
  /** Kept-alive connections the requests may use (at most this many in flight). */
  connections: number;
}

/**
 * A fixed rate in the strict sense: one request every 1000/rate ms, sent on schedule whether or
 * not the previous ones have answered (open loop, undici Pool with `connections` kept-alive
 * connections). Latency runs from the moment the request is handed to the pool, so a request
 * that waits for a free connection counts its wait. This measures what a gateway adds to one
 * request at a steady load, where autocannon's `overallRate` (above) sends each connection's
 * share of a second back to back, so its latencies mostly measure how fast a burst of
 * `connections` concurrent requests drains (a throughput figure in disguise).
 */
export async function runPaced(target: HttpTarget, options: PacedOptions): Promise<LoadResult> {
  const micros = createHistogram({ lowest: 1, highest: 60_000_000, figures: 3 });
  const url = new URL(target.url);
  const pool = new Pool(url.origin, { connections: options.connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const headers = { 'content-type': 'application/json', ...target.headers };
  const total = Math.max(1, Math.round(options.ratePerS * options.durationS));
  const intervalMs = 1000 / options.ratePerS;
  let ok = 0;
  let failed = 0;
  const inFlight: Promise<void>[] = [];
  const started = performance.now();
  const one = async (): Promise<void> => {
    const sent = performance.now();
    try {
      const res = await pool.request({ path: url.pathname + url.search, method: 'POST', headers, body: target.body, headersTimeout: 10_000, bodyTimeout: 10_000 });
      await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300) {
        ok += 1;
        micros.record(Math.max(1, Math.round((performance.now() - sent) * 1000)));
      } else failed += 1;
    } catch {
      failed += 1;
    }
  };
  for (let i = 0; i < total; i += 1) {
    const wait = started + i * intervalMs - performance.now();
    if (wait >= 1) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(one());
  }
  await Promise.all(inFlight);
  const elapsedS = (performance.now() - started) / 1000;
  await pool.close();
  return {
    ok,
    failed,
    rps: ok / Math.max(elapsedS, 1e-9),
    durationS: elapsedS,
    p50Ms: ok ? micros.percentile(50) / 1000 : Number.NaN,
    p99Ms: ok ? micros.percentile(99) / 1000 : Number.NaN,
  };
}
