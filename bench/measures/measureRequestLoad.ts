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

/**
 * 2. Throughput at a fixed number of connections, against direct and the bare proxy, in
 * interleaved rounds (see BenchPlan.throughput): requests/s is each target's answers over its
 * total time, and the ratio's spread over the rounds is shown beside it.
 */
export async function measureThroughput(targets: HttpTargets, plan: BenchPlan, report: BenchReport): Promise<void> {
  const { connections, rounds, roundS } = plan.throughput;
  const totals = { direct: { ok: 0, failed: 0, s: 0 }, bare: { ok: 0, failed: 0, s: 0 }, keyrack: { ok: 0, failed: 0, s: 0 } };
  const roundRatios: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? ORDER : [...ORDER].reverse();
    const rps = {} as Record<Name, number>;
    for (const name of order) {
      const result = await runLoad(targets[name], { connections, durationS: roundS });
      totals[name].ok += result.ok;
      totals[name].failed += result.failed;
      totals[name].s += result.durationS;
      rps[name] = result.rps;
    }
    roundRatios.push(rps.keyrack / rps.bare);
  }
  const rate = (name: Name) => totals[name].ok / Math.max(totals[name].s, 1e-9);
  const [direct, bare, keyrack] = [rate('direct'), rate('bare'), rate('keyrack')];
  const vsBare = keyrack / bare;
  const failed = totals.keyrack.failed;
  const spread = rounds > 1 ? `; rounds ${percent(Math.min(...roundRatios))} to ${percent(Math.max(...roundRatios))}` : '';
  report.add({
    section: 2,
    measure: `Throughput, /v1 non-streaming, ${connections} connections, ${rounds} interleaved round${rounds === 1 ? "" : "s"} of ${roundS} s per target`,
    keyrack: `${perSecond(keyrack)} = ${percent(vsBare)} of bare, ${percent(keyrack / direct)} of direct${spread}${failed ? `; ${failed} failed` : ''}`,
    baseline: `direct ${perSecond(direct)}; bare proxy ${perSecond(bare)} (${percent(bare / direct)} of direct)`,
    target: `>= ${percent(TARGETS.throughputVsBare)} of bare proxy`,
    met: failed === 0 && vsBare >= TARGETS.throughputVsBare,
  });
}
