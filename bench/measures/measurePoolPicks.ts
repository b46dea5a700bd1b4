import { once } from 'node:events';
import { Redis } from 'ioredis';
import { BenchReport, percent, perSecond } from '../BenchReport';
import type { PoolPicksResult } from '../poolPicks';
import { TARGETS, type BenchPlan } from '../benchPlan';
import type { BenchStack } from '../BenchStack';
import type { ChildProcesses } from '../ChildProcesses';

/**
 * 5. Key picks per second in one process (bench/poolPicks.ts, its own process), in-process
 * store and Redis store, next to `redis-benchmark -c 50` running EVALSHA of a trivial script:
 * about the most script calls this Redis answers on this machine; and on a local 3-master
 * Redis Cluster as a share of the single-node figure of the same run (issue 22).
 */
export async function measurePoolPicks(stack: BenchStack, children: ChildProcesses, plan: BenchPlan, report: BenchReport): Promise<void> {
  const picker = children.spawnTs('pool picks', 'bench/poolPicks.ts', {
    env: {
      BENCH_REDIS_URL: stack.redisUrl,
      BENCH_REDIS_CLUSTER_URL: stack.redisClusterUrl ?? '',
      BENCH_DURATION_MS: String(plan.pool.durationMs),
      BENCH_REDIS_IN_FLIGHT: String(plan.pool.redisInFlight),
    },
  });
  const [code] = (await once(picker.process, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`bench/poolPicks.ts exited with ${code}: ${picker.output().slice(-500)}`);
  const picks = JSON.parse(picker.output().trim().split('\n').pop() ?? '{}') as PoolPicksResult;

  const ceiling = await redisBenchmarkEvalsha(stack, children, plan.pool.redisBenchmarkRequests);

  report.add({
    section: 5,
    measure: 'Key picks/s in one process, in-process store (KeyPool.acquire, awaited one by one)',
    keyrack: perSecond(picks.memoryPicksPerS),
    baseline: '',
    target: `>= ${perSecond(TARGETS.memoryPicksPerS)}`,
    met: picks.memoryPicksPerS >= TARGETS.memoryPicksPerS,
  });
  const ratio = picks.redisPicksPerS / ceiling;
  report.add({
    section: 5,
    measure: `Key picks/s in one process, Redis store (${picks.redisInFlight} in flight, writes coalesced per turn as in the gateway)`,
    keyrack: `${perSecond(picks.redisPicksPerS)} = ${percent(ratio)} of ceiling`,
    baseline: `redis-benchmark -c 50 EVALSHA (return 1): ${perSecond(ceiling)}`,
    target: `>= ${percent(TARGETS.redisPicksVsCeiling)} of redis-benchmark`,
    met: ratio >= TARGETS.redisPicksVsCeiling,
  });
  const cluster = picks.cluster;
  if (!cluster) throw new Error('bench/poolPicks.ts measured no Redis Cluster (the stack started none)');
  const vsSingle = cluster.spreadPicksPerS / picks.redisPicksPerS;
  report.add({
    section: 5,
    measure: `Key picks/s in one process, Redis store on a local 3-master Redis Cluster (${cluster.pools} pools, one per master; ${picks.redisInFlight} in flight shared among them; writes coalesced per turn on each node, as in the gateway)`,
    keyrack: `${perSecond(cluster.spreadPicksPerS)} = ${percent(vsSingle)} of the single-node Redis figure (same run)`,
    baseline: `single node (row above) ${perSecond(picks.redisPicksPerS)}; one pool on the cluster ${perSecond(cluster.onePoolPicksPerS)} (${percent(cluster.onePoolPicksPerS / picks.redisPicksPerS)}); picker CPU per pick ${cpuUs(cluster.spreadCpuUsPerPick)} on the cluster, ${cpuUs(picks.redisCpuUsPerPick)} on the single node`,
    target: `>= ${percent(TARGETS.clusterPicksVsSingleNode)} of the single-node figure`,
    met: vsSingle >= TARGETS.clusterPicksVsSingleNode,
  });
}

function cpuUs(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(1)} us` : 'n/a';
}

async function redisBenchmarkEvalsha(stack: BenchStack, children: ChildProcesses, requests: number): Promise<number> {
  const redis = new Redis(stack.redisUrl);
  let sha: string;
  try {
    sha = String(await redis.script('LOAD', 'return 1'));
  } finally {
    redis.disconnect();
  }
  const bench = children.spawnProgram('redis-benchmark', 'redis-benchmark', [
    '-h', '127.0.0.1', '-p', String(stack.redisPort), '-c', '50', '-n', String(requests), '--csv', 'EVALSHA', sha, '0',
  ]);
  const [code] = (await once(bench.process, 'exit')) as [number | null];
  // CSV: a header line, then "EVALSHA <sha> 0","<rps>",...
  const line = bench.output().trim().split('\n').find((l) => l.startsWith('"EVALSHA'));
  const rps = line ? Number(line.split(',')[1]?.replace(/"/g, '')) : Number.NaN;
  if (code !== 0 || !Number.isFinite(rps)) throw new Error(`redis-benchmark failed (exit ${code}): ${bench.output().slice(-300)}`);
  return rps;
}
