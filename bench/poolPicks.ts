import { once } from 'node:events';
import { KeyPool, type PoolConfigInput } from '../server/pool/KeyPool';
import { createMemoryStore } from '../server/pool/stores/memoryStore';
import { createRedisStore } from '../server/pool/stores/redisStore';
import { createGatewayRedis } from '../server/ops/createGatewayRedis';

/**
 * Key picks per second in one process, run as its own process by bench/run.ts so the figures
 * are not disturbed by the benchmark's other work. Prints one JSON line:
 * `{ memoryPicksPerS, memoryStorePicksPerS, redisPicksPerS, redisInFlight }`.
 *
 * BENCH_REDIS_URL (required), BENCH_DURATION_MS (per measurement, default 2000),
 * BENCH_REDIS_IN_FLIGHT (concurrent picks on the Redis store, default 256).
 */
const redisUrl = process.env.BENCH_REDIS_URL;
if (!redisUrl) throw new Error('BENCH_REDIS_URL is required');
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

/** `inFlight` callers, each awaiting its own picks: how a busy gateway uses the Redis store. */
async function concurrentRate(pick: () => Promise<unknown>, callers: number): Promise<number> {
  const warmUntil = performance.now() + Math.min(500, durationMs / 4);
  await Promise.all(Array.from({ length: callers }, async () => {
    while (performance.now() < warmUntil) await pick();
  }));
  let count = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(Array.from({ length: callers }, async () => {
    while (performance.now() < deadline) {
      await pick();
      count += 1;
    }
  }));
  return count / ((performance.now() - started) / 1000);
}

const memoryStore = createMemoryStore();
const memoryPool = new KeyPool(memoryStore);
memoryPool.setPools([benchPool('bench-memory')]);
const acquireMemory = async () => {
  const result = await memoryPool.acquire('bench-memory');
  if (!result.ok) throw new Error(`memory pick refused: ${result.reason}`);
};
const memoryPicksPerS = await sequentialRate(acquireMemory);

// The connection the gateway's pool store uses (createGateway): writes coalesced per turn.
const redis = createGatewayRedis(redisUrl, { role: 'pool', coalesceWrites: true });
if (redis.status !== 'ready') await once(redis, 'ready');
const prefix = `keyrack-bench-${process.pid}`;
const redisPool = new KeyPool(createRedisStore({ redis, prefix }));
redisPool.setPools([benchPool('bench-redis')]);
const acquireRedis = async () => {
  const result = await redisPool.acquire('bench-redis');
  if (!result.ok) throw new Error(`redis pick refused: ${result.reason}`);
};
const redisPicksPerS = await concurrentRate(acquireRedis, inFlight);
const leftovers = await redis.keys(`${prefix}:*`);
if (leftovers.length > 0) await redis.del(...leftovers);
redis.disconnect();

process.stdout.write(JSON.stringify({ memoryPicksPerS, redisPicksPerS, redisInFlight: inFlight }) + '\n');
