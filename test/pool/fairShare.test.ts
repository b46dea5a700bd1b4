import { beforeEach, describe, expect, it } from 'vitest';
import type { CountingPoolStore, PickAsk, PoolDefinition } from '../../server/pool/types';
import { poolStoresUnderTest } from '../support/poolStores';

/**
 * Issue 22, fair share and the wait queue at the store: one contract for the in-process store
 * and Redis (pick.lua), on an injected clock. Nothing sleeps.
 */

const WINDOW = 60_000;
const T0 = 100 * WINDOW; // a bucket boundary, so use estimates are round numbers

let now = T0;
const clock = () => now;
const stores = poolStoresUnderTest('test-fair', clock);

function pool(rpm: number, accounts = 1): PoolDefinition {
  const keys = Array.from({ length: accounts }, (_, i) => ({ fingerprint: `f${i}`, account: `a${i}` }));
  return { id: 'openai', strategy: 'round-robin', rpm, tpm: 0, windowMs: WINDOW, keys };
}

describe.each(stores)('issue 22: fair share and the wait queue (%s store)', (_name, makeStore) => {
  let store: CountingPoolStore;
  beforeEach(() => {
    now = T0;
    store = makeStore();
  });

  const ask = (user: string, extra: PickAsk = {}) => ({ user, ...extra });
  async function servedUntilRefused(def: PoolDefinition, order: PickAsk[], rounds: number): Promise<Record<string, number>> {
    const served: Record<string, number> = {};
    for (let r = 0; r < rounds; r++) {
      for (const a of order) {
        const picked = await store.pick(def, a);
        if (picked.ok) served[a.user!] = (served[a.user!] ?? 0) + 1;
      }
    }
    return served;
  }

  it('a pool that never refused anyone serves everyone as before (no share computed)', async () => {
    const def = pool(10);
    const served = await servedUntilRefused(def, [ask('heavy')], 10);
    expect(served).toEqual({ heavy: 10 });
    expect(await store.pick(def, ask('heavy'))).toEqual({ ok: false, reason: 'busy', retryAfterMs: WINDOW });
  });

  it('a user under their share is never refused because another is over theirs', async () => {
    const def = pool(10);
    await servedUntilRefused(def, [ask('heavy')], 10); // the heavy user took the whole window
    now = T0 + WINDOW - 1;
    expect((await store.pick(def, ask('light'))).ok).toBe(false); // scarce now; light is active
    now = T0 + WINDOW; // the window frees: both ask from nothing
    // Heavy asks first and often, but may take only its share (10 / 2): the rest stays light's.
    expect(await servedUntilRefused(def, [ask('heavy')], 10)).toEqual({ heavy: 5 });
    expect(await servedUntilRefused(def, [ask('light')], 5)).toEqual({ light: 5 });
    // Once light is over its share too, what is left is anyone's: nothing is left idle.
    now = T0 + 2 * WINDOW;
    expect(await servedUntilRefused(def, [ask('heavy'), ask('light')], 10)).toEqual({ heavy: 5, light: 5 });
  });

  it('weights: a user of weight 2 gets twice the share of a user of weight 1', async () => {
    const def = pool(9);
    const both = [ask('one', { weight: 1 }), ask('two', { weight: 2 })];
    // First come, first served until the pool first refuses someone...
    expect(await servedUntilRefused(def, both, 10)).toEqual({ one: 5, two: 4 });
    // ...then, in every window after, shares by weight: 9 * 1/3 and 9 * 2/3.
    now = T0 + WINDOW;
    expect(await servedUntilRefused(def, both, 10)).toEqual({ one: 3, two: 6 });
    now = T0 + 2 * WINDOW;
    expect(await servedUntilRefused(def, both, 10)).toEqual({ one: 3, two: 6 });
  });

  it('a waiter gets a ticket and the moment the next slot frees; a newcomer does not pass it', async () => {
    const def = pool(2);
    now = T0;
    expect((await store.pick(def)).ok).toBe(true);
    now = T0 + 1_000;
    expect((await store.pick(def)).ok).toBe(true);
    now = T0 + 2_000;
    const waiting = await store.pick(def, { queueMax: 10, waitMs: 120_000 });
    expect(waiting).toMatchObject({ ok: false, reason: 'busy', retryAfterMs: WINDOW - 2_000 });
    const ticket = (waiting as { ticket?: string }).ticket!;
    expect(ticket).toEqual(expect.any(String));
    now = T0 + WINDOW; // one slot free: it is the waiter's
    expect(await store.pick(def)).toMatchObject({ ok: false, reason: 'busy' });
    expect(await store.pick(def, { ticket, queueMax: 10, waitMs: 60_000 })).toMatchObject({ ok: true });
    now = T0 + WINDOW + 1_000; // the queue is empty again: the next one is anyone's
    expect((await store.pick(def)).ok).toBe(true);
  });

  it('the queue is bounded: past its length a request is refused outright (no ticket)', async () => {
    const def = pool(1);
    await store.pick(def);
    expect(await store.pick(def, { queueMax: 1, waitMs: 10_000 })).toHaveProperty('ticket');
    expect(await store.pick(def, { queueMax: 1, waitMs: 10_000 })).toEqual({ ok: false, reason: 'busy', retryAfterMs: WINDOW });
    expect((await store.fairness!(def)).queue).toEqual({ length: 1, oldestJoinedAt: T0 });
  });

  it('a waiter that leaves, or whose deadline passed, no longer holds the queue', async () => {
    const def = pool(1);
    await store.pick(def);
    const first = (await store.pick(def, { queueMax: 5, waitMs: 5_000 })) as { ticket: string };
    const second = (await store.pick(def, { queueMax: 5, waitMs: 200_000 })) as { ticket: string };
    await store.leave!(def, second.ticket);
    expect((await store.fairness!(def)).queue.length).toBe(1);
    now = T0 + WINDOW; // first's deadline (T0 + 5 s) passed: gone, unseen
    expect((await store.pick(def)).ok).toBe(true);
    expect((await store.fairness!(def)).queue.length).toBe(0);
    expect(first.ticket).not.toBe(second.ticket);
  });

  it('waiters are served in fair order: the least-served user first, then arrival', async () => {
    const def = pool(1); // one slot per window, so each round serves one waiter
    await store.pick(def, ask('heavy'));
    const q = { queueMax: 10, waitMs: 600_000 };
    const tickets: [string, string][] = [];
    for (const user of ['heavy', 'heavy', 'light', 'other', 'light']) {
      const r = (await store.pick(def, ask(user, q))) as { ticket: string };
      tickets.push([user, r.ticket]);
    }
    const order: string[] = [];
    for (let round = 1; order.length < tickets.length && round < 10; round++) {
      now = T0 + round * WINDOW;
      for (const [user, ticket] of tickets) {
        if (order.includes(ticket)) continue;
        if ((await store.pick(def, ask(user, { ...q, ticket }))).ok) order.push(ticket);
      }
    }
    const users = order.map((t) => tickets.find(([, x]) => x === t)![0]);
    // Scores at joining: heavy used 1 (1, then 2 behind its own first); light and other nothing
    // (0), light's second behind its first (1, after heavy's first: equal scores go by arrival).
    expect(users).toEqual(['light', 'other', 'heavy', 'light', 'heavy']);
  });

  it('admin view: active users with their weight and use in the window', async () => {
    const def = pool(5);
    await store.pick(def, ask('ann', { weight: 3 }));
    await store.pick(def, ask('ann', { weight: 3 }));
    await store.pick(def, ask('bob'));
    const view = await store.fairness!(def);
    expect(view.users.sort((a, b) => a.userId.localeCompare(b.userId))).toEqual([
      { userId: 'ann', weight: 3, requests: 2 },
      { userId: 'bob', weight: 1, requests: 1 },
    ]);
  });
});
