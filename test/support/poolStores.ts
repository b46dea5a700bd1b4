import { randomUUID } from 'node:crypto';
import { afterAll } from 'vitest';
import { createMemoryStore } from '../../server/pool/stores/memoryStore';
import { createRedisStore } from '../../server/pool/stores/redisStore';
import type { CountingPoolStore } from '../../server/pool/types';
import type { RedisClient } from '../../server/ops/redisClient';
import { REDIS_TOPOLOGIES } from './redisTopologies';

/**
 * The pool stores a store contract runs on (issue 22: every shared behaviour on a single Redis
 * and on a Redis Cluster alike), for `describe.each`: the in-process store and the Redis store
 * on each topology, each store built afresh (its own prefix) on the given clock. Registers an
 * afterAll that closes the Redis connections it opened; call it at the top of a test file.
 *
 *   describe.each(poolStoresUnderTest('test-fair', clock))('... (%s store)', (_name, makeStore) => ...)
 */
export function poolStoresUnderTest(prefix: string, clock: () => number): [string, () => CountingPoolStore][] {
  const clients: RedisClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((r) => r.quit()));
  });
  return [
    ['memory', () => createMemoryStore({ clock })],
    ...REDIS_TOPOLOGIES.map((topology): [string, () => CountingPoolStore] => [
      topology.cluster ? 'Redis Cluster' : 'redis',
      () => {
        const redis = topology.connect();
        clients.push(redis);
        return createRedisStore({ redis, prefix: `${prefix}-${randomUUID()}`, clock });
      },
    ]),
  ];
}
