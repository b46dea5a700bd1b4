import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, expect, inject, it } from 'vitest';
import { createRedisStore } from '../../server/pool/stores/redisStore';
import type { PoolDefinition } from '../../server/pool/types';

/** What only the Redis store promises, beyond the shared contract. */

const redis = new Redis(inject('redisUrl'));
afterAll(() => redis.quit());

const def: PoolDefinition = {
  id: 'openai',
  strategy: 'round-robin',
  rpm: 5,
  tpm: 100,
  windowMs: 60_000,
  keys: [
    { fingerprint: 'f1', account: 'acct' },
    { fingerprint: 'f2', account: 'f2' },
  ],
};

async function keysUnder(prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found.sort();
}

it('keeps a pool under one hash tag, and every key it writes expires', async () => {
  const prefix = `test-redis-${randomUUID()}`;
  const store = createRedisStore({ redis, prefix });
  await store.pick(def);
  await store.pick(def);
  await store.record(def, 'f1', { kind: 'success', tokens: 10 });
  await store.record(def, 'f2', { kind: 'quota_exhausted', cooldownMs: 30 * 24 * 3_600_000 });
  await store.setEnabled(def, 'f1', false);
  const keys = await keysUnder(prefix);
  expect(keys).toEqual(
    [`:meta`, `:r:acct`, `:r:f2`, `:s:acct`, `:t:acct`].map((k) => `${prefix}:{pool:openai}${k}`),
  );
  for (const key of keys) expect(await redis.pttl(key)).toBeGreaterThan(0);
  // A cooldown longer than the state TTL keeps the state alive until it ends.
  expect(await redis.pttl(`${prefix}:{pool:openai}:meta`)).toBeGreaterThan(29 * 24 * 3_600_000);
});

it('reloads its scripts after SCRIPT FLUSH (NOSCRIPT)', async () => {
  const store = createRedisStore({ redis, prefix: `test-redis-${randomUUID()}` });
  expect((await store.pick(def)).ok).toBe(true);
  await redis.script('FLUSH');
  expect((await store.pick(def)).ok).toBe(true);
  await redis.script('FLUSH');
  await store.record(def, 'f1', { kind: 'rate_limited', cooldownMs: 1_000 });
  await redis.script('FLUSH');
  expect((await store.status(def))[0]!.status).toBe('cooling');
});

it('reads time from Redis TIME by default, and records requests at that time', async () => {
  const prefix = `test-redis-${randomUUID()}`;
  const store = createRedisStore({ redis, prefix });
  const [seconds, micros] = await redis.time();
  const before = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  await store.pick(def);
  const after = await store.now();
  const [, score] = await redis.zrange(`${prefix}:{pool:openai}:r:acct`, 0, 0, 'WITHSCORES');
  expect(Number(score)).toBeGreaterThanOrEqual(before);
  expect(Number(score)).toBeLessThanOrEqual(after);
});

it('an injected clock wins over Redis TIME', async () => {
  const store = createRedisStore({ redis, prefix: `test-redis-${randomUUID()}`, clock: () => 42_000 });
  expect(await store.now()).toBe(42_000);
  await store.record(def, 'f1', { kind: 'rate_limited', cooldownMs: 1_000 });
  expect((await store.status(def))[0]!.until).toBe(43_000);
});

it('sums unlimited-TPM successes in process and writes them at once: another instance sees them after a flush', async () => {
  const prefix = `test-redis-${randomUUID()}`;
  const unlimited: PoolDefinition = { ...def, rpm: 0, tpm: 0 };
  const writer = createRedisStore({ redis, prefix, tokenFlushMs: 60_000 });
  const reader = createRedisStore({ redis, prefix });
  await writer.pick(unlimited);
  await writer.record(unlimited, 'f1', { kind: 'success', tokens: 10 });
  await writer.record(unlimited, 'f1', { kind: 'success', tokens: 5 });
  await writer.record(unlimited, 'f2', { kind: 'success', tokens: 0 });
  expect((await reader.status(unlimited)).map((s) => s.tokensThisWindow)).toEqual([0, 0]); // not written yet
  expect((await writer.status(unlimited)).map((s) => s.tokensThisWindow)).toEqual([15, 0]); // status flushes first
  await writer.record(unlimited, 'f2', { kind: 'success', tokens: 7 });
  await writer.close(); // so does close
  expect((await reader.status(unlimited)).map((s) => s.tokensThisWindow)).toEqual([15, 7]);
});
