import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { DocStore, OnceBatch } from '../../server/store/DocStore';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { SecretGuardError } from '../../server/store/secretGuard';

/** One contract, two stores: everything here holds in process and on Redis. */

const redisClients: Redis[] = [];
const stores: DocStore[] = [];
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await Promise.all(redisClients.map((r) => r.quit()));
});

const factories: [string, () => DocStore][] = [
  ['memory', () => createMemoryDocStore()],
  [
    'redis',
    () => {
      const redis = new Redis(inject('redisUrl'));
      redisClients.push(redis);
      return createRedisDocStore({ redis, prefix: `test-docstore-${randomUUID()}` });
    },
  ],
];

describe.each(factories)('DocStore contract: %s', (_name, make) => {
  const fresh = () => {
    const store = make();
    stores.push(store);
    return store;
  };

  it('stores, replaces and deletes JSON documents', async () => {
    const store = fresh();
    expect(await store.getJson('doc')).toBeNull();
    await store.setJson('doc', { a: 1, b: ['x'] });
    expect(await store.getJson('doc')).toEqual({ a: 1, b: ['x'] });
    expect(await store.setJsonIfAbsent('doc', { a: 2 })).toBe(false);
    expect(await store.setJsonIfAbsent('other', { a: 3 })).toBe(true);
    expect(await store.getJson('doc')).toEqual({ a: 1, b: ['x'] });
    await store.delete('doc');
    expect(await store.getJson('doc')).toBeNull();
  });

  it('keeps maps of JSON values; setIfPresent loses to a delete', async () => {
    const store = fresh();
    await store.mapSet('m', 'one', { n: 1 });
    await store.mapSet('m', 'two', { n: 2 });
    expect(await store.mapGet('m', 'one')).toEqual({ n: 1 });
    expect(await store.mapSize('m')).toBe(2);
    expect([...(await store.mapGetAll('m')).entries()].sort()).toEqual([
      ['one', { n: 1 }],
      ['two', { n: 2 }],
    ]);
    expect(await store.mapSetIfPresent('m', 'one', { n: 11 })).toBe(true);
    expect(await store.mapDelete('m', 'two')).toBe(true);
    expect(await store.mapDelete('m', 'two')).toBe(false);
    expect(await store.mapSetIfPresent('m', 'two', { n: 22 })).toBe(false);
    expect(await store.mapGet('m', 'two')).toBeNull();
    expect(await store.mapGet('m', 'one')).toEqual({ n: 11 });
  });

  it('increments integer and fractional counters together', async () => {
    const store = fresh();
    await store.increment('c', { requests: 1, cost: 0.25 });
    await Promise.all(Array.from({ length: 20 }, () => store.increment('c', { requests: 1, cost: 0.5 })));
    expect(await store.counters('c')).toEqual({ requests: 21, cost: 10.25 });
    expect(await store.counters('c', ['requests', 'missing'])).toEqual({ requests: 21 });
    expect(await store.counters('none')).toEqual({});
  });

  it('counts a sliding window: allowed up to the limit, then refused until the oldest hit leaves', async () => {
    const store = fresh();
    const t0 = 1_000_000;
    expect(await store.windowHit('w', t0, 60_000, 2)).toEqual({ allowed: true, count: 1 });
    expect(await store.windowHit('w', t0 + 10_000, 60_000, 2)).toEqual({ allowed: true, count: 2 });
    expect(await store.windowHit('w', t0 + 20_000, 60_000, 2)).toEqual({ allowed: false, count: 2, retryAfterMs: 40_000 });
    // Refused hits are not counted: at t0+60s the first hit has left, one slot is free.
    expect(await store.windowHit('w', t0 + 60_000, 60_000, 2)).toEqual({ allowed: true, count: 2 });
  });

  it('applies a batch once per marker: a retry with the same marker changes nothing (issue 24.8)', async () => {
    const store = fresh();
    const batch: OnceBatch = { markerKey: 't:batch:1', markerTtlMs: 60_000, writes: [{ key: 't:day', deltas: { 'r:a': 1, 'c:a': 3_000_000_000_000 }, ttlMs: 60_000 }, { key: 't:day2', deltas: { 'r:b': 2 } }] };
    expect(await store.applyOnce(batch)).toBe(true);
    expect(await store.applyOnce(batch)).toBe(false);
    expect(await store.counters('t:day')).toEqual({ 'r:a': 1, 'c:a': 3_000_000_000_000 });
    expect(await store.counters('t:day2')).toEqual({ 'r:b': 2 });
    // Forgetting a confirmed marker in the next batch: the next batch applies, the old marker is gone.
    expect(await store.applyOnce({ markerKey: 't:batch:2', markerTtlMs: 60_000, writes: [{ key: 't:day', deltas: { 'r:a': 1 } }], forget: 't:batch:1' })).toBe(true);
    expect(await store.applyOnce(batch)).toBe(true);
    expect(await store.counters('t:day')).toEqual({ 'r:a': 3, 'c:a': 6_000_000_000_000 });
    await expect(store.applyOnce({ markerKey: 't:batch:3', markerTtlMs: 60_000, writes: [{ key: 't:day', deltas: { 'sk-test-abcdefghijklmnopqrstuvwxyz012345': 1 } }] })).rejects.toBeInstanceOf(SecretGuardError);
  });

  it('reserves against a limit atomically: holds count until released or expired (issue 24.3)', async () => {
    const store = fresh();
    const now = Date.now();
    const ask = (id: string, amount: number, at = now, expiresAtMs = now + 60_000) =>
      store.reserve({ counterKey: 't:spent', field: 'c:a', extra: 0, limit: 100, holdsKey: 't:holds:a', hold: { id, amount, expiresAtMs }, nowMs: at });
    await store.increment('t:spent', { 'c:a': 40 });
    // 40 spent: admitted while spent + holds < 100, whatever the hold's size.
    const first = await ask('h1', 50);
    expect(first).toMatchObject({ ok: true, spent: 40, held: 0, hold: { key: 't:holds:a' } });
    expect(await ask('h2', 10)).toMatchObject({ ok: true, spent: 40, held: 50 });
    expect(await ask('h3', 1)).toEqual({ ok: false, spent: 40, held: 60 });
    // Only parallel reservations race: 20 at once against room for a few.
    await store.applyOnce({ markerKey: 't:release:1', markerTtlMs: 60_000, writes: [{ key: 't:spent', deltas: { 'c:a': 10 } }], releases: [first.hold!] });
    const racing = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(`r${i}`, 10)));
    expect(racing.filter((r) => r.ok)).toHaveLength(4); // 50 spent + 10 held: admitted at 60, 70, 80, 90
    // Checks without a hold place none; extra counts as spent.
    expect(await store.reserve({ counterKey: 't:spent', field: 'c:a', extra: 0, limit: 1_000, holdsKey: 't:holds:a', nowMs: now })).toEqual({ ok: true, spent: 50, held: 50 });
    expect(await store.reserve({ counterKey: 't:spent', field: 'c:a', extra: 950, limit: 1_000, holdsKey: 't:holds:a', nowMs: now })).toMatchObject({ ok: false, spent: 1_000 });
    // Holds expire at their own time: a dead instance's holds leave.
    expect(await ask('late', 10, now + 60_001, now + 120_000)).toEqual({ ok: true, spent: 50, held: 0, hold: expect.anything() });
  });

  it('notifies subscribers of changes', async () => {
    const store = fresh();
    let resolve!: (message: string) => void;
    const received = new Promise<string>((r) => (resolve = r));
    // subscribe() resolves once the subscription is live, so the publish cannot be missed.
    const unsubscribe = await store.subscribe('changes', resolve);
    await store.publish('changes', 'business');
    expect(await received).toBe('business');
    await unsubscribe();
  });

  it('writes a transaction all together, and only when the ifAbsent key is absent', async () => {
    const store = fresh();
    await store.mapSet('t:m', 'gone', 0);
    expect(
      await store.transaction([
        { op: 'setJson', key: 't:doc', value: { a: 1 } },
        { op: 'mapSet', key: 't:m', field: 'one', value: { n: 1 } },
        { op: 'mapSet', key: 't:index', field: 'u', value: 1 },
        { op: 'mapDelete', key: 't:m', field: 'gone' },
      ]),
    ).toBe(true);
    expect(await store.getJson('t:doc')).toEqual({ a: 1 });
    expect([...(await store.mapGetAll('t:m')).entries()]).toEqual([['one', { n: 1 }]]);
    expect(await store.mapGet('t:index', 'u')).toBe(1);

    expect(await store.transaction([{ op: 'setJson', key: 't:marker', value: 1 }, { op: 'mapSet', key: 't:seeded', field: 'x', value: 1 }], { ifAbsent: 't:marker' })).toBe(true);
    expect(await store.transaction([{ op: 'setJson', key: 't:marker', value: 2 }, { op: 'mapSet', key: 't:seeded', field: 'y', value: 2 }], { ifAbsent: 't:marker' })).toBe(false);
    expect(await store.getJson('t:marker')).toBe(1);
    expect([...(await store.mapGetAll('t:seeded')).keys()]).toEqual(['x']);
    // Concurrent seeders: exactly one writes.
    const outcomes = await Promise.all(Array.from({ length: 5 }, (_, i) => store.transaction([{ op: 'setJson', key: 't:race', value: i }], { ifAbsent: 't:race' })));
    expect(outcomes.filter(Boolean)).toHaveLength(1);
  });

  it('lists the keys that begin with a prefix, glob characters matching themselves', async () => {
    const store = fresh();
    await store.mapSet('byok:keys:alice', 'r1', 1);
    await store.mapSet('byok:keys:b%2A*', 'r1', 1);
    await store.setJson('byok:settings:alice', { x: 1 });
    await store.increment('byok:keysish', { n: 1 });
    expect((await store.keysWithPrefix('byok:keys:')).sort()).toEqual(['byok:keys:alice', 'byok:keys:b%2A*']);
    expect(await store.keysWithPrefix('byok:keys:b%2A*')).toEqual(['byok:keys:b%2A*']);
    expect(await store.keysWithPrefix('byok:keys:?')).toEqual([]);
    expect(await store.keysWithPrefix('nothing:')).toEqual([]);
  });

  it('issue 24.10: a transaction with one secret-looking value writes nothing', async () => {
    const store = fresh();
    const secret = 'sk-test-abcdefghijklmnopqrstuvwxyz012345';
    const attempt = store.transaction([
      { op: 'mapSet', key: 't:records', field: 'r1', value: { label: 'fine' } },
      { op: 'mapSet', key: 't:index', field: 'u', value: 1 },
      { op: 'setJson', key: 't:doc', value: { note: secret } },
    ]);
    await expect(attempt).rejects.toBeInstanceOf(SecretGuardError);
    await attempt.catch((error: Error) => expect(error.message).not.toContain(secret));
    await expect(store.transaction([{ op: 'mapSet', key: 't:records', field: 'r1', value: 1 }, { op: 'mapSet', key: 't:index', field: secret, value: 1 }])).rejects.toBeInstanceOf(SecretGuardError);
    expect(await store.mapSize('t:records')).toBe(0);
    expect(await store.mapSize('t:index')).toBe(0);
    expect(await store.getJson('t:doc')).toBeNull();
  });

  it('refuses secret-looking writes, naming the field and not the value', async () => {
    const store = fresh();
    const secret = 'sk-test-abcdefghijklmnopqrstuvwxyz012345';
    const attempt = store.setJson('cfg', { settings: { note: secret } });
    await expect(attempt).rejects.toBeInstanceOf(SecretGuardError);
    await expect(store.setJson('cfg', { settings: { note: secret } })).rejects.toThrow(/cfg\.settings\.note/);
    await store.setJson('cfg', { settings: { note: secret } }).catch((error: Error) => expect(error.message).not.toContain(secret));
    await expect(store.mapSet('t:m', 'x', [secret])).rejects.toBeInstanceOf(SecretGuardError);
    await expect(store.mapSet('t:m', secret, 1)).rejects.toBeInstanceOf(SecretGuardError);
    await expect(store.publish('changes', secret)).rejects.toBeInstanceOf(SecretGuardError);
    expect(await store.getJson('cfg')).toBeNull();
  });
});

describe('redis DocStore transaction', () => {
  it('checks every key before the first write: one that would fail midway (wrong type) leaves the others unwritten', async () => {
    const redis = new Redis(inject('redisUrl'));
    redisClients.push(redis);
    const store = createRedisDocStore({ redis, prefix: `test-docstore-${randomUUID()}` });
    stores.push(store);
    await store.setJson('t:doc', { a: 1 });
    await expect(
      store.transaction([
        { op: 'mapSet', key: 't:records', field: 'r1', value: 1 },
        { op: 'mapSet', key: 't:doc', field: 'x', value: 1 }, // a string key, not a map
      ]),
    ).rejects.toThrow(/WRONGTYPE/);
    expect(await store.mapSize('t:records')).toBe(0);
    expect(await store.getJson('t:doc')).toEqual({ a: 1 });
  });
});
