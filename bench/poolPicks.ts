import { once } from 'node:events';
import { KeyPool, type PoolConfigInput } from '../server/pool/KeyPool';
import { createMemoryStore } from '../server/pool/stores/memoryStore';
import { createRedisStore } from '../server/pool/stores/redisStore';
import { createGatewayRedis } from '../server/ops/createGatewayRedis';
import { isClusterClient, scanKeys, type RedisClient } from '../server/ops/redisClient';

/**
 * Key picks per second in one process, run as its own process by bench/run.ts so the figures
 * are not disturbed by the benchmark's other work. Prints one JSON line (PoolPicksResult).
 *
 * BENCH_REDIS_URL (required), BENCH_REDIS_CLUSTER_URL (a `redis+cluster://` URL: also measure
 * on a Redis Cluster, issue 22), BENCH_DURATION_MS (per measurement, default 2000),
 * BENCH_REDIS_IN_FLIGHT (concurrent picks on the Redis store, default 256).
 */
export interface PoolPicksResult {
  memoryPicksPerS: number;
  redisPicksPerS: number;
  /** CPU (user + kernel) of this process per Redis pick, in microseconds. */
  redisCpuUsPerPick: number;
  redisInFlight: number;
  cluster?: {
    /** One pool: its keys share one hash slot, so one master serves every pick. */
    onePoolPicksPerS: number;
    /** `pools` pools, one per master of the cluster, the in-flight picks shared among them. */
    spreadPicksPerS: number;
    spreadCpuUsPerPick: number;
    pools: number;
  };
}

const redisUrl = process.env.BENCH_REDIS_URL;
if (!redisUrl) throw new Error('BENCH_REDIS_URL is required');
const clusterUrl = process.env.BENCH_REDIS_CLUSTER_URL || undefined;
const durationMs = Number(process.env.BENCH_DURATION_MS ?? 2000);
const inFlight = Number(process.env.BENCH_REDIS_IN_FLIGHT ?? 256);

/** Eight fake keys, unlimited rpm/tpm: the gateway's benchmark configuration. */
function benchPool(id: string): PoolConfigInput {
  return {
    id,
    provider: 'openai',
    strategy: 'round-robin',
    rpm: 0,
    tpm: 0,
    keys: Array.from({ length: 8 }, (_, i) => ({ secret: `sk-test-bench-pick-${i}`, account: null })),
  };
}

/** One caller awaiting each pick in turn: the cost of a decision, promise included. */
async function sequentialRate(pick: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 20_000; i += 1) await pick(); // warm up the JIT
  let count = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  while (performance.now() < deadline) {
    for (let i = 0; i < 10_000; i += 1) await pick();
    count += 10_000;
  }
  return count / ((performance.now() - started) / 1000);
}

/**
 * `callers` callers, each awaiting its own picks, caller i on `picks[i % picks.length]` (one
 * pool each): how a busy gateway uses the Redis store. Also this process's CPU per pick.
 */
async function concurrentRate(picks: (() => Promise<unknown>)[], callers: number): Promise<{ perS: number; cpuUsPerPick: number }> {
  const callerPicks = Array.from({ length: callers }, (_, i) => picks[i % picks.length]!);
  const warmUntil = performance.now() + Math.min(500, durationMs / 4);
  await Promise.all(callerPicks.map(async (pick) => {
    while (performance.now() < warmUntil) await pick();
  }));
  let count = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(callerPicks.map(async (pick) => {
    while (performance.now() < deadline) {
      await pick();
      count += 1;
    }
  }));
  const used = process.cpuUsage(cpu);
  return { perS: count / ((performance.now() - started) / 1000), cpuUsPerPick: (used.user + used.system) / count };
}

const memoryStore = createMemoryStore();
const memoryPool = new KeyPool(memoryStore);
memoryPool.setPools([benchPool('bench-memory')]);
const acquireMemory = async () => {
  const result = await memoryPool.acquire('bench-memory');
  if (!result.ok) throw new Error(`memory pick refused: ${result.reason}`);
};
const memoryPicksPerS = await sequentialRate(acquireMemory);

/**
 * Picks on the Redis store over the connection the gateway's pool store uses (createGateway):
 * writes coalesced per turn (on a cluster, per node connection). `poolIds(redis)` names the
 * pools the in-flight picks share.
 */
async function redisRate(url: string, poolIds: (redis: RedisClient, prefix: string) => Promise<string[]>) {
  const redis = createGatewayRedis(url, { role: 'pool', coalesceWrites: true });
  if (redis.status !== 'ready') await once(redis, 'ready');
  const prefix = `keyrack-bench-${process.pid}`;
  try {
    const ids = await poolIds(redis, prefix);
    const pool = new KeyPool(createRedisStore({ redis, prefix }));
    pool.setPools(ids.map(benchPool));
    const picks = ids.map((id) => async () => {
      const result = await pool.acquire(id);
      if (!result.ok) throw new Error(`redis pick refused: ${result.reason}`);
    });
    return { ...(await concurrentRate(picks, inFlight)), pools: ids.length };
  } finally {
    // One DEL per key: on a cluster the keys of different pools live in different slots.
    for await (const keys of scanKeys(redis, `${prefix}:*`)) await Promise.all(keys.map((key) => redis.del(key)));
    redis.disconnect();
  }
}

/**
 * Pool ids whose keys land on different masters, one per master: how pools of several providers
 * spread over a cluster (each pool's keys share the hash tag `{pool:<id>}`, so one slot).
 */
async function onePoolPerMaster(redis: RedisClient, prefix: string): Promise<string[]> {
  if (!isClusterClient(redis)) throw new Error('BENCH_REDIS_CLUSTER_URL is not a cluster');
  // CLUSTER SLOTS: [first slot, last slot, [host, port, id], ...replicas] per range.
  const ranges = await redis.cluster('SLOTS');
  const masterOf = (slot: number) => ranges.find(([first, last]) => slot >= first && slot <= last)?.[2]?.slice(0, 2).join(':');
  const masters = new Set(ranges.map((range) => range[2]?.slice(0, 2).join(':')));
  const chosen = new Map<string, string>();
  for (let i = 0; chosen.size < masters.size && i < 1_000; i += 1) {
    const id = `bench-cluster-${i}`;
    const master = masterOf(Number(await redis.cluster('KEYSLOT', `${prefix}:{pool:${id}}:meta`)));
    if (master && !chosen.has(master)) chosen.set(master, id);
  }
  if (chosen.size < masters.size) throw new Error(`found pool ids for ${chosen.size} of ${masters.size} masters`);
  return [...chosen.values()];
}

const single = await redisRate(redisUrl, async () => ['bench-redis']);
let cluster: PoolPicksResult['cluster'];
if (clusterUrl) {
  const onePool = await redisRate(clusterUrl, async () => ['bench-redis']);
  const spread = await redisRate(clusterUrl, onePoolPerMaster);
  cluster = { onePoolPicksPerS: onePool.perS, spreadPicksPerS: spread.perS, spreadCpuUsPerPick: spread.cpuUsPerPick, pools: spread.pools };
}

const result: PoolPicksResult = {
  memoryPicksPerS,
  redisPicksPerS: single.perS,
  redisCpuUsPerPick: single.cpuUsPerPick,
  redisInFlight: inFlight,
  ...(cluster ? { cluster } : {}),
};
process.stdout.write(JSON.stringify(result) + '\n');
