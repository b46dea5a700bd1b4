import { afterAll, beforeAll, expect, it } from 'vitest';
import { createGatewayRedis, isStalled } from '../../server/ops/createGatewayRedis';
import { isStoreFailure, StoreUnavailableError } from '../../server/ops/storeFailure';
import { startRedisServer, type RedisServer } from '../support/redisServer';
import { waitFor } from './waitFor';

/**
 * Issue 24.8 at the connection: with failFastWhenStalled, one command timing out on a stalled
 * Redis makes the ones after it fail at once (each used to wait out its own timeout), a ping
 * brings the connection back, and duplicates (blocking reads) keep their long timeout.
 */

let server: RedisServer;
let stopped = false;
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  if (stopped) server?.process.kill('SIGCONT');
  await server?.stop();
});

it('issue 24.8: after one timeout on a stalled Redis, commands fail at once with a store error until a ping is answered', async () => {
  const redis = createGatewayRedis(server.url, { commandTimeoutMs: 300, failFastWhenStalled: { probeMs: 50 }, offlineQueue: true, duplicateCommandTimeoutMs: 5_000 });
  const reader = redis.duplicate();
  try {
    await waitFor(() => redis.status === 'ready' && reader.status === 'ready', 'the connections');
    await expect(redis.set('stall:k', 'v')).resolves.toBe('OK');
    expect(isStalled(redis)).toBe(false);

    server.process.kill('SIGSTOP');
    stopped = true;
    const first = await redis.get('stall:k').catch((error: unknown) => error);
    expect(isStoreFailure(first)).toBe(true);
    expect(isStalled(redis)).toBe(true);
    // Refused without a round trip (a StoreUnavailableError, not ioredis's own timeout each).
    const next = await Promise.all(Array.from({ length: 20 }, () => redis.get('stall:k').catch((error: unknown) => error)));
    for (const error of next) expect(error).toBeInstanceOf(StoreUnavailableError);
    // A duplicate has the long timeout: its blocking read is still waiting, not timed out.
    const blocking = reader.xread('BLOCK', 1_000, 'STREAMS', 'stall:stream', '$');

    server.process.kill('SIGCONT');
    stopped = false;
    await waitFor(() => !isStalled(redis), 'the probe to see Redis answer');
    await expect(redis.get('stall:k')).resolves.toBe('v');
    // Redis, continued, ends the block after its 1 s: null, not a client-side timeout.
    await expect(blocking).resolves.toBeNull();
  } finally {
    reader.disconnect();
    redis.disconnect();
  }
});
