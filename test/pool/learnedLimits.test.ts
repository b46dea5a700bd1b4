import { beforeEach, describe, expect, it } from 'vitest';
import type { CountingPoolStore, LimitObservation, PoolDefinition, PoolKey } from '../../server/pool/types';
import { poolStoresUnderTest } from '../support/poolStores';

/**
 * Issue 22, learned limits: one contract for the memory and the Redis store. What an answer
 * states of its account's windows paces the account; time is an injected clock.
 */

const WINDOW = 60_000;
const T0 = 100 * WINDOW;
let now = T0;
const clock = () => now;

const stores = poolStoresUnderTest('test-learned', clock);

function key(fingerprint: string, account = fingerprint): PoolKey {
  return { fingerprint, account };
}

function pool(keys: PoolKey[], overrides: Partial<PoolDefinition> = {}): PoolDefinition {
  return { id: 'openai', strategy: 'round-robin', rpm: 0, tpm: 0, windowMs: WINDOW, keys, ...overrides };
}

async function granted(store: CountingPoolStore, def: PoolDefinition, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = await store.pick(def);
    if (r.ok) out.push(r.fingerprint);
  }
  return out;
}

const stated = (requests: LimitObservation['requests'], sinceMs = 0, tokens?: LimitObservation['tokens']): LimitObservation => ({
  sinceMs,
  ...(requests ? { requests } : {}),
  ...(tokens ? { tokens } : {}),
});

describe.each(stores)('issue 22: learned limits, %s store', (_name, makeStore) => {
  let store: CountingPoolStore;
  beforeEach(() => {
    now = T0;
    store = makeStore();
  });

  it('a key with no configured RPM is paced by the limit its provider states', async () => {
    const def = pool([key('a')]);
    expect(await granted(store, def, 3)).toHaveLength(3); // nothing learned: unlimited
    await store.record(def, 'a', { kind: 'success', tokens: 0, limits: stated({ limit: 5 }) });
    // The picks before the observation were estimates; from now on the window is exact.
    expect(await granted(store, def, 10)).toHaveLength(5);
    const refused = await store.pick(def);
    expect(refused).toMatchObject({ ok: false, reason: 'busy' });
    expect((refused as { retryAfterMs: number }).retryAfterMs).toBe(WINDOW);
    now += WINDOW;
    expect(await granted(store, def, 10)).toHaveLength(5);
  });

  it('a configured RPM above the stated limit is corrected; one below it stands', async () => {
    const high = pool([key('a')], { rpm: 100 });
    await store.record(high, 'a', { kind: 'success', tokens: 0, limits: stated({ limit: 3 }) });
    expect(await granted(store, high, 10)).toHaveLength(3);

    const low = pool([key('b')], { id: 'other', rpm: 2 });
    await store.record(low, 'b', { kind: 'success', tokens: 0, limits: stated({ limit: 10 }) });
    expect(await granted(store, low, 10)).toHaveLength(2);
  });

  it("the provider's remaining holds until its reset: picks since the observation count against it", async () => {
    const def = pool([key('a')]);
    // Sent 5 ms ago, 2 left of 100, back to full in 30 s.
    now += 10;
    await store.record(def, 'a', { kind: 'success', tokens: 0, limits: stated({ limit: 100, remaining: 2, resetInMs: 30_000 }, 5) });
    expect(await granted(store, def, 5)).toHaveLength(2);
    const refused = await store.pick(def);
    expect(refused).toEqual({ ok: false, reason: 'busy', retryAfterMs: 30_000 });
    now += 30_000; // reset passed: the stated limit over the sliding window
    expect(await granted(store, def, 200)).toHaveLength(98);
  });

  it('an older observation (a long stream ending last) does not overwrite a newer one', async () => {
    const def = pool([key('a')]);
    await store.record(def, 'a', { kind: 'success', tokens: 0, limits: stated({ limit: 100, remaining: 1, resetInMs: 60_000 }, 0) });
    await store.record(def, 'a', { kind: 'success', tokens: 0, limits: stated({ limit: 100, remaining: 50, resetInMs: 60_000 }, 5_000) });
    now += 1;
    expect(await granted(store, def, 5)).toHaveLength(1);
  });

  it('a 429 teaches too: its cooldown and its stated window', async () => {
    const def = pool([key('a'), key('b')]);
    await store.record(def, 'a', { kind: 'rate_limited', cooldownMs: 1_000, limits: stated({ limit: 2, remaining: 0, resetInMs: 20_000 }) });
    expect(await granted(store, def, 4)).toEqual(['b', 'b', 'b', 'b']);
    now += 1_000; // cooled, but what was left (nothing) holds until the reset
    expect(await granted(store, def, 2)).toEqual(['b', 'b']);
    now += 19_000;
    expect(new Set(await granted(store, def, 6))).toEqual(new Set(['a', 'b']));
  });

  it('a stated token window paces by tokens recorded in it', async () => {
    const def = pool([key('a')]);
    await store.record(def, 'a', { kind: 'success', tokens: 0, limits: stated(undefined, 0, { limit: 1_000 }) });
    expect(await granted(store, def, 1)).toHaveLength(1);
    await store.record(def, 'a', { kind: 'success', tokens: 1_000 });
    await store.status(def); // the Redis store batches unlimited-TPM token counts: flush them
    expect(await store.pick(def)).toMatchObject({ ok: false, reason: 'busy' });
    now += WINDOW;
    expect(await granted(store, def, 1)).toHaveLength(1);
  });

  it('status reports what was learned, per account', async () => {
    const def = pool([key('a', 'acct'), key('b', 'acct'), key('c')]);
    await store.record(def, 'a', { kind: 'success', tokens: 0, limits: stated({ limit: 60, remaining: 59, resetInMs: 1_000 }, 0, { limit: 150_000, remaining: 149_984, resetInMs: 360_000 }) });
    await granted(store, def, 2);
    const states = await store.status(def);
    const learned = { requests: { limit: 60, remaining: 59, observedAt: T0, resetAt: T0 + 1_000 }, tokens: { limit: 150_000, remaining: 149_984, observedAt: T0, resetAt: T0 + 360_000 } };
    expect(states.map((s) => s.learned)).toEqual([learned, learned, null]);
    expect(states[0]!.requestsThisWindow).toBe(2) // a and b, one account;
  });

  it('a pool that learned nothing behaves as before', async () => {
    const def = pool([key('a'), key('b')], { rpm: 2 });
    expect(await granted(store, def, 5)).toEqual(['a', 'b', 'a', 'b']);
    expect((await store.status(def)).every((s) => s.learned === null)).toBe(true);
  });
});
