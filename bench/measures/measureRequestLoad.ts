import { BenchReport, ms, percent, perSecond } from '../BenchReport';
import { TARGETS, type BenchPlan } from '../benchPlan';
import { runLoad, runPaced, type LoadResult } from '../httpLoad';
import type { HttpTargets } from '../httpTargets';

type Name = keyof HttpTargets;
const ORDER: Name[] = ['direct', 'bare', 'keyrack'];

/** Unmeasured load on every target, so the measured runs meet warm JITs and open pools. */
export async function warmUp(targets: HttpTargets, plan: BenchPlan): Promise<void> {
  for (const name of ORDER) await runLoad(targets[name], { connections: plan.throughput.connections, durationS: plan.warmupS });
}

/**
 * 1. Added latency at a fixed rate: (through Keyrack) minus (direct), p50 and p99, with requests
 * paced one every 2 ms (runPaced), each target right after `warmupS` of the same load. Beside
 * it, as context without a target, the same rate as autocannon's `overallRate` sends it (each
 * connection's share of a second back to back), which is how the first runs measured it.
 */
export async function measureAddedLatency(targets: HttpTargets, plan: BenchPlan, report: BenchReport): Promise<void> {
  const { overallRate, durationS, connections } = plan.latency;
  const results = {} as Record<Name, LoadResult>;
  for (const name of ORDER) {
    // The same load just before the measured run: each target is measured in its steady state,
    // not coming back from the other targets' runs. A gateway idle for the ~40 s those take has
    // had its heap shrunk by V8's memory reducer and spends its first seconds of load in
    // back-to-back major GCs while the heap limit grows back (notes in BENCHMARKS.md).
    await runPaced(targets[name], { ratePerS: overallRate, durationS: plan.warmupS, connections });
    results[name] = await runPaced(targets[name], { ratePerS: overallRate, durationS, connections });
  }
  const { direct, bare, keyrack } = results;
  const failures = keyrack.failed > 0 ? `; ${keyrack.failed} failed` : '';
  const load = `${overallRate} req/s paced evenly for ${durationS} s, up to ${connections} conns`;
  for (const q of ['p50', 'p99'] as const) {
    const key = `${q}Ms` as const;
    const added = keyrack[key] - direct[key];
    const target = q === 'p50' ? TARGETS.addedLatencyP50Ms : TARGETS.addedLatencyP99Ms;
    report.add({
      section: 1,
      measure: `Added latency ${q}, /v1 non-streaming, Redis store (${load})`,
      keyrack: `+${ms(added)} (${ms(keyrack[key])}${failures})`,
      baseline: `direct ${ms(direct[key])}; bare proxy +${ms(bare[key] - direct[key])}`,
      target: `<= ${target} ms`,
      met: keyrack.failed === 0 && added <= target,
    });
  }
  const bursts = {} as Record<Name, LoadResult>;
  for (const name of ORDER) bursts[name] = await runLoad(targets[name], { connections, durationS: Math.min(durationS, 10), overallRate });
  report.add({
    section: 1,
    measure: `Context: added latency p50 / p99 with autocannon overallRate ${overallRate} (bursts of ${connections} concurrent requests; ${Math.min(durationS, 10)} s)`,
    keyrack: `+${ms(bursts.keyrack.p50Ms - bursts.direct.p50Ms)} / +${ms(bursts.keyrack.p99Ms - bursts.direct.p99Ms)}`,
    baseline: `bare proxy +${ms(bursts.bare.p50Ms - bursts.direct.p50Ms)} / +${ms(bursts.bare.p99Ms - bursts.direct.p99Ms)}`,
    target: '',
    met: null,
  });
}

/** 2. Throughput at a fixed number of connections, against direct and the bare proxy. */
export async function measureThroughput(targets: HttpTargets, plan: BenchPlan, report: BenchReport): Promise<void> {
  const { connections, durationS } = plan.throughput;
  const results = {} as Record<Name, LoadResult>;
  for (const name of ORDER) results[name] = await runLoad(targets[name], { connections, durationS });
  const { direct, bare, keyrack } = results;
  const vsBare = keyrack.rps / bare.rps;
  report.add({
    section: 2,
    measure: `Throughput, /v1 non-streaming, ${connections} connections, ${durationS} s`,
    keyrack: `${perSecond(keyrack.rps)} = ${percent(vsBare)} of bare, ${percent(keyrack.rps / direct.rps)} of direct${keyrack.failed ? `; ${keyrack.failed} failed` : ''}`,
    baseline: `direct ${perSecond(direct.rps)}; bare proxy ${perSecond(bare.rps)} (${percent(bare.rps / direct.rps)} of direct)`,
    target: `>= ${percent(TARGETS.throughputVsBare)} of bare proxy`,
    met: keyrack.failed === 0 && vsBare >= TARGETS.throughputVsBare,
  });
}
