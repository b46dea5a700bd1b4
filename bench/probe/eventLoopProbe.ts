import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Loaded into the gateway by the benchmark (`node --import tsx --import ./bench/probe/eventLoopProbe.ts`),
 * so event-loop delay is measured the same way whatever the gateway exports. On SIGUSR2 it
 * prints one line `KEYRACK_BENCH_PROBE {...}` with the delay since the previous report and
 * starts a new interval. Nothing else changes in the process.
 */
export const PROBE_MARKER = 'KEYRACK_BENCH_PROBE ';

const histogram = monitorEventLoopDelay({ resolution: 5 });
histogram.enable();

process.on('SIGUSR2', () => {
  const ns = (q: number) => histogram.percentile(q) / 1e6;
  const report = {
    p50Ms: ns(50),
    p99Ms: ns(99),
    maxMs: histogram.max / 1e6,
    samples: histogram.count,
    rssBytes: process.memoryUsage.rss(),
    heapUsedBytes: process.memoryUsage().heapUsed,
  };
  histogram.reset();
  process.stdout.write(PROBE_MARKER + JSON.stringify(report) + '\n');
});
