import { connectRedis } from '../ops/redisClient';
import type { DocStore } from './DocStore';
import { createMemoryDocStore } from './memoryDocStore';
import { createRedisDocStore } from './redisDocStore';

/** Redis when REDIS_URL is set (the store then owns and closes the connection), else in-process. */
export function createDocStore(env: { redisUrl: string | null; redisPrefix: string; redisCluster?: boolean }): DocStore {
  if (!env.redisUrl) return createMemoryDocStore();
  const redis = connectRedis(env.redisUrl, { lazyConnect: false, cluster: env.redisCluster ?? false });
  return createRedisDocStore({ redis, prefix: env.redisPrefix, quitOnClose: true });
}
