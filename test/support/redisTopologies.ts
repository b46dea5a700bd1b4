import { describe, inject } from 'vitest';
import type { Redis } from 'ioredis';
import { connectRedis, isClusterClient, type RedisClient } from '../../server/ops/redisClient';

/**
 * Issue 22: the tests that prove shared behaviour (overshoot across instances, resumes, learned
 * limits, fair share, the queue) run on a single Redis and on a Redis Cluster alike.
 *
 *   forEachRedisTopology((topology) => {
 *     it('...', async () => { const env = { REDIS_URL: topology.url(), REDIS_PREFIX: ... }; ... });
 *   });
 *
 * `url()` is the run's shared server or cluster (globalSetup); a `redis+cluster://` URL needs no
 * REDIS_CLUSTER flag. `connect()` opens a plain client to it (close it).
 */
export interface RedisTopology {
  name: 'single node' | 'cluster';
  cluster: boolean;
  url(): string;
  connect(): RedisClient;
}

export const REDIS_TOPOLOGIES: readonly RedisTopology[] = [
  { name: 'single node', cluster: false, url: () => inject('redisUrl'), connect: () => connectRedis(inject('redisUrl')) },
  { name: 'cluster', cluster: true, url: () => inject('redisClusterUrl'), connect: () => connectRedis(inject('redisClusterUrl')) },
];

/** A describe block per topology, named `on a single node` / `on a cluster`. */
export function forEachRedisTopology(body: (topology: RedisTopology) => void): void {
  for (const topology of REDIS_TOPOLOGIES) describe(`on a ${topology.name === 'cluster' ? 'Redis Cluster' : 'single Redis node'}`, () => body(topology));
}

/** The master nodes (one for a single node): for per-node commands such as CLIENT LIST or SCAN. */
export function mastersOf(redis: RedisClient): Redis[] {
  return isClusterClient(redis) ? redis.nodes('master') : [redis];
}
