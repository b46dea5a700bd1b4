import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ByokVault } from '../../server/byok/ByokVault';
import { NotifiedCache, EVERY_ENTRY } from '../../server/store/NotifiedCache';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import type { DocStore } from '../../server/store/DocStore';
import { UsageLedger } from '../../server/usage/UsageLedger';
import { waitFor } from '../ops/waitFor';

/**
 * The per-user caches on the chat path (issue #8: no store read per request for a user's limits
 * or BYOK routing) stay correct across instances: a change made through one instance drops the
 * entry on every other one, a stale entry is reloaded after maxAgeMs, and nothing is cached
 * before start().
 */

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

function redisStore(prefix: string): DocStore {
  const redis = new Redis(inject('redisUrl'));
  const store = createRedisDocStore({ redis, prefix });
  closers.push(() => redis.quit(), () => store.close());
  return store;
}

function counted<V>(value: () => V): { load: () => Promise<V>; loads: () => number } {
  let loads = 0;
  return { load: async () => ((loads += 1), value()), loads: () => loads };
}

describe('NotifiedCache', () => {
  it('reads through before start(), caches after, reloads after maxAgeMs', async () => {
    let now = 0;
    const cache = new NotifiedCache<number>({ store: createMemoryDocStore(), channel: 'c', maxAgeMs: 1000, clock: () => now });
    const source = counted(() => 7);
    await cache.get('u', source.load);
    await cache.get('u', source.load);
    expect(source.loads()).toBe(2);
    await cache.start();
    await cache.get('u', source.load);
    await cache.get('u', source.load);
    expect(source.loads()).toBe(3);
    now = 1000;
    await cache.get('u', source.load);
    expect(source.loads()).toBe(4);
    await cache.close();
  });

  it("a change drops a load in flight for its key, and leaves other keys' loads alone", async () => {
    const cache = new NotifiedCache<string>({ store: createMemoryDocStore(), channel: 'c', maxAgeMs: 60_000 });
    await cache.start();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = (value: string) => async () => (await gate, value);
    const a = counted(() => 'a');
    const inFlightA = cache.get('a', async () => (await gate, a.load()));
    const inFlightB = cache.get('b', slow('b-old'));
    await cache.changed('b');
    release();
    expect([await inFlightA, await inFlightB]).toEqual(['a', 'b-old']);
    // a's load is kept: the change was to b.
    expect(await cache.get('a', a.load)).toBe('a');
    expect(a.loads()).toBe(1);
    // b's overtaken load is not: the next read loads again.
    expect(await cache.get('b', async () => 'b-new')).toBe('b-new');
    await cache.close();
  });

  it('a change on one instance drops the entry on the other (shared Redis), one key or all', async () => {
    const prefix = `test-notified-${randomUUID()}`;
    const a = new NotifiedCache<string>({ store: redisStore(prefix), channel: 'limits', maxAgeMs: 60_000 });
    const b = new NotifiedCache<string>({ store: redisStore(prefix), channel: 'limits', maxAgeMs: 60_000 });
    await Promise.all([a.start(), b.start()]);
    let stored = 'v1';
    const source = counted(() => stored);
    expect(await b.get('alice', source.load)).toBe('v1');
    expect(await b.get('bob', source.load)).toBe('v1');
    stored = 'v2';
    await a.changed('alice');
    await waitFor(async () => (await b.get('alice', source.load)) === 'v2', 'b to drop alice');
    expect(await b.get('bob', source.load)).toBe('v1'); // untouched
    stored = 'v3';
    await a.changed(EVERY_ENTRY);
    await waitFor(async () => (await b.get('bob', source.load)) === 'v3', 'b to drop everything');
    await Promise.all([a.close(), b.close()]);
  });

  it('issue 24.10: a change for a user id that looks like a secret (hex, high entropy) reaches the other instance', async () => {
    const prefix = `test-notified-${randomUUID()}`;
    const a = new NotifiedCache<string>({ store: redisStore(prefix), channel: 'limits', maxAgeMs: 60_000 });
    const b = new NotifiedCache<string>({ store: redisStore(prefix), channel: 'limits', maxAgeMs: 60_000 });
    await Promise.all([a.start(), b.start()]);
    for (const id of ['a94a8fe5ccb19ba61c4c0873d391e987982fbbd3', '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', 'user_2NNEqL2nrIRdJ194ndJqAHwEfxC']) {
      let stored = 'v1';
      const source = counted(() => stored);
      expect(await b.get(id, source.load)).toBe('v1');
      stored = 'v2';
      await a.changed(id);
      await waitFor(async () => (await b.get(id, source.load)) === 'v2', 'b to drop the entry');
    }
    await Promise.all([a.close(), b.close()]);
  });

  it('a failed load is not kept', async () => {
    const cache = new NotifiedCache<number>({ store: createMemoryDocStore(), channel: 'c' });
    await cache.start();
    await expect(cache.get('u', () => Promise.reject(new Error('store away')))).rejects.toThrow('store away');
    expect(await cache.get('u', async () => 1)).toBe(1);
    await cache.close();
  });
});

describe('per-user caches on the chat path', () => {
  it("limits set through one instance apply to the other's next check", async () => {
    const prefix = `test-notified-${randomUUID()}`;
    const a = new UsageLedger({ store: redisStore(prefix), flushIntervalMs: null });
    const b = new UsageLedger({ store: redisStore(prefix), flushIntervalMs: null });
    await Promise.all([a.init(), b.init()]);
    expect(await b.checkUserLimits('carol')).toEqual({ ok: true }); // b now caches "no limits"
    await a.setLimits('carol', { dailyBudgetUsd: 0 });
    await waitFor(async () => !(await b.checkUserLimits('carol')).ok, "b to apply carol's new budget");
    expect(await b.checkUserLimits('carol')).toMatchObject({ ok: false, refused: 'budget' });
    await Promise.all([a.close(), b.close()]);
  });

  it('usage recorded off the answer path is seen by the reader on the same instance at once, and written by close()', async () => {
    const prefix = `test-notified-${randomUUID()}`;
    const a = new UsageLedger({ store: redisStore(prefix), flushIntervalMs: null });
    const b = new UsageLedger({ store: redisStore(prefix), flushIntervalMs: null });
    const today = new Date().toISOString().slice(0, 10);
    for (let i = 0; i < 5; i += 1) a.recordSoon('dave', { inputTokens: 10, outputTokens: 20, costUsd: 0.001 });
    expect(await a.mine('dave', { from: today, to: today })).toMatchObject({ requests: 5, inputTokens: 50, outputTokens: 100 });
    a.recordSoon('dave', { inputTokens: 1, outputTokens: 1, costUsd: 0 });
    await a.close();
    expect(await b.mine('dave', { from: today, to: today })).toMatchObject({ requests: 6, inputTokens: 51, outputTokens: 101 });
    await b.close();
  });

  it("a BYOK key added through one instance routes the other's next chat", async () => {
    const prefix = `test-notified-${randomUUID()}`;
    const encryptionKey = Buffer.alloc(32, 7);
    const a = new ByokVault({ store: redisStore(prefix), encryptionKey });
    const b = new ByokVault({ store: redisStore(prefix), encryptionKey });
    await Promise.all([a.init(), b.init()]);
    expect((await b.routing('erin')).providers.size).toBe(0);
    const added = await a.add('erin', { provider: 'anthropic', apiKey: 'sk-test-notified-erin-000000000001' });
    await waitFor(async () => (await b.routing('erin')).providers.has('anthropic'), "b to see erin's key");
    await a.setSettings('erin', { fallbackToSharedPool: false });
    await waitFor(async () => !(await b.routing('erin')).fallbackToSharedPool, "b to see erin's setting");
    await a.remove('erin', added.id);
    await waitFor(async () => (await b.routing('erin')).providers.size === 0, 'b to see the key gone');
    await Promise.all([a.close(), b.close()]);
  });
});
