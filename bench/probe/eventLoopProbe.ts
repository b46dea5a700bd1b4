import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Loaded into the gateway by the benchmark (bench/BenchStack.ts compiles it with the server
 * bundle: `node --import dist/bench/probe/eventLoopProbe.js dist/server/main.js`), so
 * event-loop delay is measured the same way whatever the gateway exports. On SIGUSR2 it
 * prints one line `KEYRACK_BENCH_PROBE {...}` with the delay since the previous report (and
 * the process's memory breakdown and CPU time) and starts a new interval. Nothing else changes
 * in the process.
 */
export const PROBE_MARKER = 'KEYRACK_BENCH_PROBE ';

const histogram = monitorEventLoopDelay({ resolution: 5 });
histogram.enable();
let cpuSince = process.cpuUsage();

process.on('SIGUSR2', () => {
  const ns = (q: number) => histogram.percentile(q) / 1e6;
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage(cpuSince);
  cpuSince = process.cpuUsage();
  const report = {
    p50Ms: ns(50),
    p99Ms: ns(99),
    maxMs: histogram.max / 1e6,
    samples: histogram.count,
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal,
    externalBytes: memory.external,
    arrayBuffersBytes: memory.arrayBuffers,
    cpuUserMs: cpu.user / 1e3,
    cpuSystemMs: cpu.system / 1e3,
  };
  histogram.reset();
  process.stdout.write(PROBE_MARKER + JSON.stringify(report) + '\n');
});
