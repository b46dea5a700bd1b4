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
  expect(keys.map((k) => k.replace(/:def:[\w-]+$/, ':def:<version>'))).toEqual(
    [`:def:<version>`, `:meta`, `:r:acct`, `:r:f2`, `:s:acct`, `:t:acct`].map((k) => `${prefix}:{pool:openai}${k}`),
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

it('keeps the pool definition in Redis: a pick sends only its version, and a lost definition costs one retry', async () => {
  const prefix = `test-redis-${randomUUID()}`;
  const store = createRedisStore({ redis, prefix });
  const unlimited: PoolDefinition = { ...def, id: 'lost', rpm: 0, tpm: 0 };
  expect((await store.pick(unlimited)).ok).toBe(true);
  const [definitionKey, ...others] = (await keysUnder(prefix)).filter((k) => k.includes(':def:'));
  expect(others).toEqual([]);
  expect(await redis.pttl(definitionKey!)).toBeGreaterThan(0);
  expect(await redis.pttl(`${prefix}:{pool:lost}:load`)).toBeGreaterThan(0); // unlimited pools' estimates
  expect(JSON.parse((await redis.get(definitionKey!))!)).toEqual([60_000, 0, 0, 'r', 7 * 24 * 3_600_000, 120_000, ['acct', 'f2'], ['f1', 'f2'], [1, 2]]);

  const monitor = await redis.duplicate().monitor();
  const commands: string[] = [];
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[0]?.toLowerCase() === 'evalsha') commands.push(args.join(' '));
  });
  try {
    await store.pick(unlimited);
    await redis.del(definitionKey!); // expired, or Redis restarted empty
    expect(await store.pick(unlimited)).toEqual({ ok: true, fingerprint: 'f1' }); // the cursor went on: f1, f2, f1
    await redis.ping(); // MONITOR sees commands in order: this one's reply means the picks are logged
  } finally {
    monitor.disconnect();
  }
  const picks = commands.filter((c) => c.includes(':meta'));
  expect(picks).toHaveLength(3); // one, then the miss and its retry with the definition
  expect(picks[0]!.split(' ')).toHaveLength(1 + 1 + 1 + 3 + 2); // evalsha, sha, numkeys, meta + load + definition key, now, ''
  expect(picks[2]).toContain('"f2"');
  expect(await redis.exists(definitionKey!)).toBe(1);
});

it('instances with different configurations of one pool (a rolling reload) each keep their own definition', async () => {
  const prefix = `test-redis-${randomUUID()}`;
  const before: PoolDefinition = { ...def, id: 'rolling', rpm: 0, tpm: 0 };
  const after: PoolDefinition = { ...before, keys: [...before.keys, { fingerprint: 'f3', account: 'f3' }] };
  const old = createRedisStore({ redis, prefix });
  const updated = createRedisStore({ redis, prefix });
  const served: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    for (const [store, pool] of [[old, before], [updated, after]] as const) {
      const result = await store.pick(pool);
      if (result.ok) served.push(result.fingerprint);
    }
  }
  expect((await keysUnder(prefix)).filter((k) => k.includes(':def:'))).toHaveLength(2);
  expect(served).toHaveLength(6); // neither refused nor sent into a retry loop by the other
  const alone = await Promise.all([updated.pick(after), updated.pick(after), updated.pick(after)]);
  expect(alone.map((r) => (r.ok ? r.fingerprint : r.reason)).sort()).toEqual(['f1', 'f2', 'f3']);
  // State is by fingerprint, whichever definition a store was given.
  await updated.setEnabled(after, 'f1', false);
  for (let i = 0; i < 3; i += 1) expect(await old.pick(before)).toEqual({ ok: true, fingerprint: 'f2' });
});

it('unlimited estimates are counters per window bucket, and buckets that left the window are dropped', async () => {
  const prefix = `test-redis-${randomUUID()}`;
  let now = 1_000_000;
  const store = createRedisStore({ redis, prefix, clock: () => now, tokenFlushMs: 0 });
  const unlimited: PoolDefinition = { ...def, id: 'buckets', rpm: 0, tpm: 0, windowMs: 1_000 };
  for (let step = 0; step < 5; step += 1) {
    await store.pick(unlimited);
    await store.record(unlimited, 'f1', { kind: 'success', tokens: 3 });
    await store.status(unlimited); // flushes the token sum
    now += 1_000;
  }
  const fields = (await redis.hkeys(`${prefix}:{pool:buckets}:load`)).sort();
  // Only the last two buckets (1003, 1004) are left; older ones went when a new bucket began.
  expect(fields.every((f) => /^100[34]:[rt]:/.test(f))).toBe(true);
  now = 1_004_500; // bucket 1004's 3 tokens, plus half of bucket 1003 still inside the window
  const [first] = await store.status(unlimited);
  expect(first!.tokensThisWindow).toBe(3 + Math.floor(3 / 2));
});
