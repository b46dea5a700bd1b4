import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createMemoryStore } from '../../server/pool/stores/memoryStore';
import { createRedisStore } from '../../server/pool/stores/redisStore';
import type { CountingPoolStore, PoolDefinition, PoolKey } from '../../server/pool/types';

/**
 * One contract, two stores: everything here must hold for the in-process store and for Redis.
 * Time is an injected clock; nothing sleeps.
 */

const WINDOW = 60_000;
// A multiple of the window, so a fixed-window limiter's boundary falls at T0 + WINDOW.
const T0 = 100 * WINDOW;

let now = T0;
const clock = () => now;

const redisClients: Redis[] = [];
afterAll(async () => {
  await Promise.all(redisClients.map((r) => r.quit()));
});

const stores: [string, () => CountingPoolStore][] = [
  ['memory', () => createMemoryStore({ clock })],
  [
    'redis',
    () => {
      const redis = new Redis(inject('redisUrl'));
      redisClients.push(redis);
      return createRedisStore({ redis, prefix: `test-contract-${randomUUID()}`, clock });
    },
  ],
];

function key(fingerprint: string, account = fingerprint): PoolKey {
  return { fingerprint, account };
}

function pool(keys: PoolKey[], overrides: Partial<PoolDefinition> = {}): PoolDefinition {
  return { id: 'openai', strategy: 'round-robin', rpm: 0, tpm: 0, windowMs: WINDOW, keys, ...overrides };
}

async function picks(store: CountingPoolStore, def: PoolDefinition, count: number): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for (let i = 0; i < count; i++) {
    const r = await store.pick(def);
    out.push(r.ok ? r.fingerprint : null);
  }
  return out;
}

describe.each(stores)('PoolStore contract: %s store', (_name, makeStore) => {
  let store: CountingPoolStore;
  beforeEach(() => {
    now = T0;
    store = makeStore();
  });

  describe('add (issue 24.9: counts carried into and out of the outage fallback)', () => {
    it('issue 24.9: counts added requests and tokens in the account\'s windows at their ages; ones already out of the window count for nothing', async () => {
      const def = pool([key('a', 'acct'), key('b', 'acct'), key('c')], { rpm: 4, tpm: 1_000 });
      await store.add(def, 'a', [
        { ageMs: 50_000, requests: 2, tokens: 300 },
        { ageMs: 10_000, requests: 1, tokens: 0 },
        { ageMs: WINDOW + 1, requests: 5, tokens: 5_000 },
      ]);
      const [a, b, c] = await store.status(def);
      expect([a!.requestsThisWindow, a!.tokensThisWindow]).toEqual([3, 300]);
      expect(b!.requestsThisWindow).toBe(3); // same account
      expect(c!.requestsThisWindow).toBe(0);
      // One request left on the shared account, then c.
      expect(await picks(store, def, 3)).toEqual(['a', 'c', 'c']);
      // The two added 50 s ago leave the window 10 s from now.
      now += 10_000;
      expect((await store.status(def))[0]!.requestsThisWindow).toBe(2);
      expect((await store.status(def))[0]!.tokensThisWindow).toBe(0);
    });
  });

  describe('round-robin', () => {
    it('cycles through the keys in order', async () => {
      const def = pool([key('a'), key('b'), key('c')]);
      expect(await picks(store, def, 7)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
    });

    it('skips disabled keys and cooling accounts, and never hands one out', async () => {
      const def = pool([key('a'), key('b'), key('c')]);
      await store.setEnabled(def, 'b', false);
      await store.record(def, 'c', { kind: 'rate_limited', cooldownMs: 10_000 });
      expect(await picks(store, def, 4)).toEqual(['a', 'a', 'a', 'a']);
    });

    it('continues after the chosen key, so a skipped key does not double its neighbour\'s share', async () => {
      const def = pool([key('a'), key('b'), key('c')]);
      await store.setEnabled(def, 'b', false);
      expect(await picks(store, def, 4)).toEqual(['a', 'c', 'a', 'c']);
    });
  });

  describe('least-loaded', () => {
    it('picks the account with the fewest requests in the window, ties in round-robin order', async () => {
      const def = pool([key('a'), key('b'), key('c')], { strategy: 'least-loaded', rpm: 100 });
      // a and b carry load from a round-robin view of the same pool (same state).
      const rr = pool(def.keys.slice(), { rpm: 100 });
      await picks(store, rr, 2); // a, b
      expect(await picks(store, def, 4)).toEqual(['c', 'a', 'b', 'c']);
    });

    it('counts load per account, not per key', async () => {
      const def = pool([key('a', 'shared'), key('b', 'shared'), key('c')], { strategy: 'least-loaded' });
      const out = await picks(store, def, 6);
      expect(out.filter((f) => f === 'c')).toHaveLength(3);
    });
  });

  describe('limits are per account', () => {
    it('two keys of one account share one RPM window', async () => {
      const def = pool([key('a', 'acct'), key('b', 'acct'), key('c')], { rpm: 2 });
      const out = await picks(store, def, 6);
      expect(out.filter((f) => f === 'a' || f === 'b')).toHaveLength(2);
      expect(out.filter((f) => f === 'c')).toHaveLength(2);
      expect(out.slice(4)).toEqual([null, null]);
    });

    it('a rate limit cools every key of the account together', async () => {
      const def = pool([key('a', 'acct'), key('b', 'acct'), key('c')]);
      await store.record(def, 'a', { kind: 'rate_limited', cooldownMs: 5_000 });
      expect(await picks(store, def, 3)).toEqual(['c', 'c', 'c']);
      const status = await store.status(def);
      expect(status.map((s) => s.status)).toEqual(['cooling', 'cooling', 'ok']);
    });
  });

  describe('sliding window', () => {
    it('lets no double burst through at a fixed-window edge', async () => {
      const def = pool([key('a')], { rpm: 2 });
      // Two requests just before a fixed window's edge and two just after.
      const attempts = [T0 + WINDOW - 1, T0 + WINDOW - 1, T0 + WINDOW, T0 + WINDOW];
      const fixedWindowGrants = fixedWindowModel(attempts, 2, WINDOW);
      expect(fixedWindowGrants).toBe(4); // what a per-minute counter would allow within 1 ms

      let granted = 0;
      const refusals: (number | null)[] = [];
      for (const at of attempts) {
        now = at;
        const r = await store.pick(def);
        if (r.ok) granted++;
        else refusals.push(r.retryAfterMs);
      }
      expect(granted).toBe(2);
      // The first request leaves the window exactly WINDOW after it was made.
      expect(refusals).toEqual([WINDOW - 1, WINDOW - 1]);

      now = T0 + 2 * WINDOW - 2;
      expect((await store.pick(def)).ok).toBe(false);
      now = T0 + 2 * WINDOW - 1;
      expect(await picks(store, def, 3)).toEqual(['a', 'a', null]);
    });

    it('TPM: an account is skipped once its tokens in the window reach the limit', async () => {
      const def = pool([key('a'), key('b')], { tpm: 100 });
      await store.record(def, 'a', { kind: 'success', tokens: 60 });
      now += 1_000;
      await store.record(def, 'a', { kind: 'success', tokens: 50 });
      now += 1_000;
      expect(await picks(store, def, 2)).toEqual(['b', 'b']);
      await store.record(def, 'b', { kind: 'success', tokens: 100 });
      // a frees up when its 60-token entry leaves (110 - 60 < 100); b when its 100 leave.
      expect(await store.pick(def)).toEqual({ ok: false, reason: 'busy', retryAfterMs: WINDOW - 2_000 });
      now = T0 + WINDOW;
      expect(await picks(store, def, 1)).toEqual(['a']);
      const [a] = await store.status(def);
      expect(a!.tokensThisWindow).toBe(50);
    });
  });

  describe('cooldowns', () => {
    it('end by the clock: an expired cooldown shows ok and the key serves again', async () => {
      const def = pool([key('a'), key('b')]);
      await store.record(def, 'a', { kind: 'rate_limited', cooldownMs: 5_000 });
      expect((await store.status(def))[0]).toMatchObject({ status: 'cooling', reason: 'rate_limited', until: T0 + 5_000 });
      now = T0 + 4_999;
      expect(await picks(store, def, 2)).toEqual(['b', 'b']);
      now = T0 + 5_000;
      expect((await store.status(def))[0]).toMatchObject({ status: 'ok', reason: null, until: null });
      expect(await picks(store, def, 2)).toEqual(['a', 'b']);
    });

    it('a short rate limit never shortens a longer quota cooldown', async () => {
      const def = pool([key('a')]);
      await store.record(def, 'a', { kind: 'quota_exhausted', cooldownMs: 3_600_000 });
      await store.record(def, 'a', { kind: 'rate_limited', cooldownMs: 1_000 });
      expect((await store.status(def))[0]).toMatchObject({ status: 'cooling', reason: 'quota_exhausted', until: T0 + 3_600_000 });
      now = T0 + 2_000;
      expect(await store.pick(def)).toEqual({ ok: false, reason: 'busy', retryAfterMs: 3_598_000 });
    });

    it('a later, longer cooldown extends a shorter one', async () => {
      const def = pool([key('a')]);
      await store.record(def, 'a', { kind: 'rate_limited', cooldownMs: 1_000 });
      await store.record(def, 'a', { kind: 'quota_exhausted', cooldownMs: 60_000 });
      expect((await store.status(def))[0]).toMatchObject({ reason: 'quota_exhausted', until: T0 + 60_000 });
    });
  });

  describe('disable and enable', () => {
    it('a rejected key is out until enabled; the rest of its account keeps serving', async () => {
      const def = pool([key('a', 'acct'), key('b', 'acct')]);
      await store.record(def, 'a', { kind: 'rejected' });
      expect(await picks(store, def, 2)).toEqual(['b', 'b']);
      now += 10 * WINDOW;
      expect((await store.status(def))[0]).toMatchObject({ status: 'disabled', reason: 'rejected', until: null });
      await store.setEnabled(def, 'a', true);
      expect((await store.status(def))[0]).toMatchObject({ status: 'ok', reason: null });
      expect(await picks(store, def, 2)).toEqual(['a', 'b']);
    });

    it('admin disable has its own reason and enable clears it', async () => {
      const def = pool([key('a'), key('b')]);
      await store.setEnabled(def, 'a', false);
      expect((await store.status(def))[0]).toMatchObject({ status: 'disabled', reason: 'admin_disabled' });
      await store.setEnabled(def, 'a', true);
      expect(await picks(store, def, 2)).toEqual(['a', 'b']);
    });

    it('transient failures change nothing', async () => {
      const def = pool([key('a')]);
      await store.record(def, 'a', { kind: 'transient' });
      expect((await store.status(def))[0]).toMatchObject({ status: 'ok', reason: null });
    });
  });

  describe('refusal', () => {
    it('no_keys when the pool is empty or every key is disabled', async () => {
      expect(await store.pick(pool([]))).toEqual({ ok: false, reason: 'no_keys', retryAfterMs: null });
      const def = pool([key('a'), key('b')]);
      await store.setEnabled(def, 'a', false);
      await store.record(def, 'b', { kind: 'rejected' });
      expect(await store.pick(def)).toEqual({ ok: false, reason: 'no_keys', retryAfterMs: null });
    });

    it('busy with the soonest of cooldown end and window release, ignoring disabled keys', async () => {
      const def = pool([key('cool'), key('full'), key('off')], { rpm: 1 });
      await store.record(def, 'cool', { kind: 'rate_limited', cooldownMs: 50_000 });
      await store.setEnabled(def, 'off', false);
      expect(await picks(store, def, 1)).toEqual(['full']); // at T0, leaves the window at T0 + WINDOW
      now = T0 + 5_000;
      expect(await store.pick(def)).toEqual({ ok: false, reason: 'busy', retryAfterMs: 45_000 });
      now = T0 + 55_000;
      expect(await store.pick(def)).toEqual({ ok: true, fingerprint: 'cool' });
      expect(await store.pick(def)).toEqual({ ok: false, reason: 'busy', retryAfterMs: 5_000 });
    });

    it('retryAfterMs is at least 1', async () => {
      const def = pool([key('a')], { rpm: 1 });
      await store.pick(def);
      now = T0 + WINDOW - 1;
      expect(await store.pick(def)).toEqual({ ok: false, reason: 'busy', retryAfterMs: 1 });
    });

    it('an account held by both a cooldown and a full window waits for the later of the two', async () => {
      const def = pool([key('a')], { rpm: 1 });
      await store.pick(def);
      await store.record(def, 'a', { kind: 'rate_limited', cooldownMs: 1_000 });
      expect(await store.pick(def)).toEqual({ ok: false, reason: 'busy', retryAfterMs: WINDOW });
    });
  });

  describe('status', () => {
    it('lists keys in pool order with their account\'s window counts', async () => {
      const def = pool([key('z', 'acct'), key('a'), key('m', 'acct')], { rpm: 10, tpm: 1_000 });
      await picks(store, def, 3); // z, a, m
      await store.record(def, 'z', { kind: 'success', tokens: 7 });
      const status = await store.status(def);
      expect(status).toEqual([
        { fingerprint: 'z', account: 'acct', status: 'ok', reason: null, until: null, requestsThisWindow: 2, tokensThisWindow: 7, learned: null },
        { fingerprint: 'a', account: 'a', status: 'ok', reason: null, until: null, requestsThisWindow: 1, tokensThisWindow: 0, learned: null },
        { fingerprint: 'm', account: 'acct', status: 'ok', reason: null, until: null, requestsThisWindow: 2, tokensThisWindow: 7, learned: null },
      ]);
      now = T0 + WINDOW;
      expect((await store.status(def)).map((s) => [s.requestsThisWindow, s.tokensThisWindow])).toEqual([
        [0, 0],
        [0, 0],
        [0, 0],
      ]);
    });

    it('state survives a new definition object for the same pool (config reload), by fingerprint', async () => {
      const before = pool([key('a'), key('b')]);
      await store.record(before, 'b', { kind: 'rejected' });
      await store.pick(before);
      const after = pool([key('c'), key('b'), key('a')]);
      const status = await store.status(after);
      expect(status.map((s) => [s.fingerprint, s.status, s.requestsThisWindow])).toEqual([
        ['c', 'ok', 0],
        ['b', 'disabled', 0],
        ['a', 'ok', 1],
      ]);
    });

    it('unlimited pools never refuse and still count, with the sliding-window-counter estimate', async () => {
      const def = pool([key('a'), key('b')]);
      await picks(store, def, 500);
      await store.record(def, 'a', { kind: 'success', tokens: 1_000 });
      expect((await store.status(def)).map((s) => [s.requestsThisWindow, s.tokensThisWindow])).toEqual([
        [250, 1_000],
        [250, 0],
      ]);
      // A quarter into the next window-aligned bucket, 3/4 of the previous one still counts.
      now = T0 + WINDOW + WINDOW / 4;
      await picks(store, def, 2);
      expect((await store.status(def)).map((s) => [s.requestsThisWindow, s.tokensThisWindow])).toEqual([
        [1 + 187, 750],
        [1 + 187, 0],
      ]);
      now = T0 + 3 * WINDOW;
      expect((await store.status(def)).map((s) => [s.requestsThisWindow, s.tokensThisWindow])).toEqual([
        [0, 0],
        [0, 0],
      ]);
    });

    it('least-loaded balances unlimited accounts by their estimated load', async () => {
      const def = pool([key('a'), key('b'), key('c')], { strategy: 'least-loaded' });
      const rr = pool(def.keys.slice());
      await picks(store, rr, 2); // a, b
      expect(await picks(store, def, 4)).toEqual(['c', 'a', 'b', 'c']);
    });

    it('now() is the store clock', async () => {
      now = T0 + 123;
      expect(await store.now()).toBe(T0 + 123);
    });
  });
});

/** How many of `attempts` a per-calendar-window counter would grant. */
function fixedWindowModel(attempts: number[], limit: number, windowMs: number): number {
  const counts = new Map<number, number>();
  let granted = 0;
  for (const at of attempts) {
    const bucket = Math.floor(at / windowMs);
    const used = counts.get(bucket) ?? 0;
    if (used < limit) {
      counts.set(bucket, used + 1);
      granted++;
    }
  }
  return granted;
}
