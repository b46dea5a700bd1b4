import { beforeEach, describe, expect, it } from 'vitest';
import { poolFairnessOf } from '../../server/pool/poolFairnessOf';
import type { CountingPoolStore, KeyState, PickAsk, PoolDefinition } from '../../server/pool/types';
import { poolStoresUnderTest } from '../support/poolStores';

/**
 * Issue 22: fair share and the wait queue on a pool whose keys have no configured RPM, paced
 * by the limit their provider stated (learned limits). The share is of the learned capacity,
 * exactly as of a configured one; on the memory store, a Redis node and a Redis Cluster, on an
 * injected clock.
 */

const WINDOW = 60_000;
const T0 = 100 * WINDOW;
let now = T0;
const clock = () => now;
const stores = poolStoresUnderTest('test-fair-learned', clock);

/** No configured rpm: whatever limits the pool has are what its provider stated. */
function pool(accounts = 1): PoolDefinition {
  const keys = Array.from({ length: accounts }, (_, i) => ({ fingerprint: `f${i}`, account: `a${i}` }));
  return { id: 'openai', strategy: 'round-robin', rpm: 0, tpm: 0, windowMs: WINDOW, keys };
}

async function learn(store: CountingPoolStore, def: PoolDefinition, fingerprint: string, limit: number): Promise<void> {
  await store.record(def, fingerprint, { kind: 'success', tokens: 0, limits: { sinceMs: 0, requests: { limit } } });
}

describe.each(stores)('issue 22: fair share of a learned capacity (%s store)', (_name, makeStore) => {
  let store: CountingPoolStore;
  beforeEach(() => {
    now = T0;
    store = makeStore();
  });

  async function served(def: PoolDefinition, user: string, times: number): Promise<number> {
    let count = 0;
    for (let i = 0; i < times; i++) if ((await store.pick(def, { user })).ok) count++;
    return count;
  }

  it('a light user is not refused because a heavy one took the learned limit', async () => {
    const def = pool(2);
    await learn(store, def, 'f0', 6);
    await learn(store, def, 'f1', 4); // capacity: 10 a window, over two accounts
    expect(await served(def, 'heavy', 12)).toBe(10);
    now = T0 + WINDOW - 1;
    expect((await store.pick(def, { user: 'light' })).ok).toBe(false); // scarce; light is active
    now = T0 + WINDOW;
    expect(await served(def, 'heavy', 10)).toBe(5); // half of the learned 10
    expect(await served(def, 'light', 5)).toBe(5);
  });

  it('a pool stated only a token limit (as most answers state one) counts no user: no share, no cost', async () => {
    const def = pool();
    await store.record(def, 'f0', { kind: 'success', tokens: 0, limits: { sinceMs: 0, tokens: { limit: 1_000_000 } } });
    expect((await store.pick(def, { user: 'ann' })).ok).toBe(true);
    expect((await store.fairness!(def)).users).toEqual([]);
  });

  it('a waiter behind another is told when its own slot of the learned window frees', async () => {
    const def = pool();
    await learn(store, def, 'f0', 2);
    expect((await store.pick(def)).ok).toBe(true);
    now = T0 + 1_000;
    expect((await store.pick(def)).ok).toBe(true);
    now = T0 + 2_000;
    const ask: PickAsk = { queueMax: 10, waitMs: 120_000 };
    expect(await store.pick(def, ask)).toMatchObject({ ok: false, retryAfterMs: WINDOW - 2_000, ticket: expect.any(String) });
    // Second in line: the second-oldest pick's leaving frees its slot (not a whole window).
    expect(await store.pick(def, ask)).toMatchObject({ ok: false, retryAfterMs: WINDOW - 1_000, ticket: expect.any(String) });
  });
});

describe('issue 22: the admin view shares the learned capacity', () => {
  const learned = (limit: number) => ({ requests: { limit, remaining: null, observedAt: T0, resetAt: T0 }, tokens: null });
  const key = (account: string, limit: number | null, status: KeyState['status'] = 'ok'): KeyState => ({
    fingerprint: `fp-${account}`,
    account,
    status,
    reason: null,
    until: null,
    requestsThisWindow: 0,
    tokensThisWindow: 0,
    learned: limit === null ? null : learned(limit),
  });

  it("each user's share is of the accounts' limits in force, configured or learned", () => {
    const state = { now: T0, users: [{ userId: 'ann', weight: 3, requests: 4 }, { userId: 'bob', weight: 1, requests: 1 }], queue: { length: 0, oldestJoinedAt: null } };
    const config = { id: 'openai', provider: 'openai' as const, strategy: 'round-robin' as const, rpm: 0, tpm: 0, keys: [] };
    // 30 + 10 learned; the cooling account's 50 is not capacity now.
    const view = poolFairnessOf(state, config, [key('a', 30), key('b', 10), key('c', 50, 'cooling')]);
    expect(view.users).toEqual([
      { userId: 'ann', weight: 3, requestsThisWindow: 4, shareRpm: 30 },
      { userId: 'bob', weight: 1, requestsThisWindow: 1, shareRpm: 10 },
    ]);
    // A configured rpm below the learned one stands; nothing learned and nothing configured: no share.
    expect(poolFairnessOf(state, { ...config, rpm: 8 }, [key('a', 30), key('b', null)]).users?.map((u) => u.shareRpm)).toEqual([12, 4]);
    expect(poolFairnessOf(state, config, [key('a', null)]).users).toBeUndefined();
  });
});
