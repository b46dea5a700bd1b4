import { randomUUID } from 'node:crypto';
import type { RedisClient } from './redisClient';
import type { Logger } from '../observability/logger';
import type { Clock } from '../pool/types';

/**
 * Which gateway instances share this Redis. Each instance heartbeats its id into one sorted
 * set scored by time; the members seen within `ttlMs` are the live instances. While Redis is
 * away the last count seen stays the answer, so the fallback limiter divides each limit by the
 * number of instances that were sharing it (never N times the limit).
 */
export interface InstanceRegistryOptions {
  redis: RedisClient;
  prefix?: string;
  /** Default: a random UUID. */
  instanceId?: string;
  /** Default 2 000 ms. */
  heartbeatMs?: number;
  /** An instance not seen this long is gone. Default 10 000 ms. */
  ttlMs?: number;
  /** Tests inject one; by default Redis TIME, so instances with skewed clocks agree. */
  clock?: Clock;
  logger?: Logger;
}

export interface InstanceRegistry {
  readonly instanceId: string;
  /** Start heartbeating (one beat now, then every heartbeatMs). */
  start(): void;
  /** Heartbeat once; resolves to the live count, or null when Redis could not be reached. */
  beat(): Promise<number | null>;
  /** Live instances at the last successful beat, at least 1 (this one). */
  count(): number;
  /** Stop heartbeating and leave the set (best effort). */
  stop(): Promise<void>;
}

// ZADD self, drop the stale, keep the set alive a while, count. Time from Redis unless given.
const BEAT_LUA = `
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
return redis.call('ZCARD', KEYS[1])
`;

export function createInstanceRegistry(options: InstanceRegistryOptions): InstanceRegistry {
  const { redis, clock, logger } = options;
  const instanceId = options.instanceId ?? randomUUID();
  const key = `${options.prefix ?? 'keyrack'}:instances`;
  const heartbeatMs = options.heartbeatMs ?? 2_000;
  const ttlMs = options.ttlMs ?? 10_000;
  let known = 1;
  let timer: ReturnType<typeof setInterval> | undefined;

  async function beat(): Promise<number | null> {
    try {
      const count = Number(await redis.eval(BEAT_LUA, 1, key, clock ? clock() : '', instanceId, ttlMs));
      known = Math.max(1, count);
      return known;
    } catch (error) {
      logger?.debug({ err: { name: (error as Error).name } }, 'instance heartbeat failed; keeping the last known count');
      return null;
    }
  }

  return {
    instanceId,
    start() {
      if (timer) return;
      void beat();
      timer = setInterval(() => void beat(), heartbeatMs);
      timer.unref();
    },
    beat,
    count: () => known,
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      try {
        await redis.zrem(key, instanceId);
      } catch {
        // Redis away: our entry ages out after ttlMs anyway.
      }
    },
  };
}
