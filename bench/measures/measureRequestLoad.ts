import { BenchReport, ms, percent, perSecond } from '../BenchReport';
import { TARGETS, type BenchPlan } from '../benchPlan';
import { runLoad, type LoadResult } from '../httpLoad';
import type { HttpTargets } from '../httpTargets';

type Name = keyof HttpTargets;
const ORDER: Name[] = ['direct', 'bare', 'keyrack'];

/** Unmeasured load on every target, so the measured runs meet warm JITs and open pools. */
export async function warmUp(targets: HttpTargets, plan: BenchPlan): Promise<void> {
  for (const name of ORDER) await runLoad(targets[name], { connections: plan.throughput.connections, durationS: plan.warmupS });
}

/** 1. Added latency at a fixed rate: (through Keyrack) minus (direct), p50 and p99. */
export async function measureAddedLatency(targets: HttpTargets, plan: BenchPlan, report: BenchReport): Promise<void> {
  const { overallRate, durationS, connections } = plan.latency;
  const results = {} as Record<Name, LoadResult>;
  for (const name of ORDER) results[name] = await runLoad(targets[name], { connections, durationS, overallRate });
  const { direct, bare, keyrack } = results;
  const failures = keyrack.failed > 0 ? `; ${keyrack.failed} failed` : '';
  const load = `${overallRate} req/s for ${durationS} s, ${connections} conns`;
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
