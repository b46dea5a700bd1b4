import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import type { DocStore } from '../../server/store/DocStore';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { UsageError, UsageLedger } from '../../server/usage/UsageLedger';
import { startRedisServer } from '../support/redisServer';

const T0 = Date.UTC(2025, 5, 10, 12, 0, 0); // 2025-06-10 12:00 UTC
let now = T0;
const clock = () => now;
const ledgerOn = (store: DocStore) => new UsageLedger({ store, clock, flushIntervalMs: null });

const redisClients: Redis[] = [];
afterAll(async () => {
  await Promise.all(redisClients.map((r) => r.quit()));
});
const redisStore = (prefix: string, url = inject('redisUrl')) => {
  const redis = new Redis(url);
  redisClients.push(redis);
  return createRedisDocStore({ redis, prefix });
};

/** A store whose writes fail while `down` is true, as when Redis is unreachable. */
function flaky(store: DocStore) {
  const state = { down: false };
  const wrapped: DocStore = {
    ...store,
    applyOnce: (...args) => (state.down ? Promise.reject(new Error('connection refused')) : store.applyOnce(...args)),
  };
  return { store: wrapped, state };
}

describe('UsageLedger', () => {
  it('sums per user per UTC day, exactly, and reports ranges', async () => {
    now = T0;
    const ledger = ledgerOn(redisStore(`test-usage-${randomUUID()}`));
    for (let i = 0; i < 10; i++) await ledger.record('alice', { inputTokens: 100, outputTokens: 50, costUsd: 0.1 });
    await ledger.record('bob', { inputTokens: 7, outputTokens: 3, costUsd: 0.000001 });
    now = T0 + 12 * 3_600_000; // 2025-06-11 00:00 UTC: a new day
    await ledger.record('alice', { inputTokens: 1, outputTokens: 2, costUsd: 0.5 });

    const alice = await ledger.mine('alice', { from: '2025-06-09', to: '2025-06-11' });
    expect(alice).toEqual({
      userId: 'alice',
      requests: 11,
      inputTokens: 1001,
      outputTokens: 502,
      costUsd: 1.5, // ten 0.1s: exact, because counters are integer nano-dollars
      days: [
        { date: '2025-06-10', requests: 10, inputTokens: 1000, outputTokens: 500, costUsd: 1 },
        { date: '2025-06-11', requests: 1, inputTokens: 1, outputTokens: 2, costUsd: 0.5 },
      ],
    });
    expect((await ledger.mine('alice', { from: '2025-06-11', to: '2025-06-11' })).requests).toBe(1);
    const all = await ledger.byUser({ from: '2025-06-10', to: '2025-06-10' });
    expect(all.map((u) => [u.userId, u.requests, u.costUsd])).toEqual([
      ['alice', 10, 1],
      ['bob', 1, 0.000001],
    ]);
    await expect(ledger.mine('alice', { from: '2025-06-11', to: '2025-06-10' })).rejects.toThrow();
    await expect(ledger.byUser({ from: '2020-01-01', to: '2025-01-01' })).rejects.toThrow(UsageError);
  });

  it('refuses over the daily budget until the next UTC midnight', async () => {
    now = T0;
    const ledger = ledgerOn(createMemoryDocStore({ clock }));
    expect(await ledger.checkUserLimits('alice')).toEqual({ ok: true });
    await ledger.setLimits('alice', { dailyBudgetUsd: 1 });
    await ledger.record('alice', { inputTokens: 1, outputTokens: 1, costUsd: 0.6 });
    expect(await ledger.checkUserLimits('alice')).toEqual({ ok: true });
    await ledger.record('alice', { inputTokens: 1, outputTokens: 1, costUsd: 0.4 });
    expect(await ledger.checkUserLimits('alice')).toEqual({ ok: false, refused: 'budget', retryAfterMs: 12 * 3_600_000 });
    expect(await ledger.checkUserLimits('bob')).toEqual({ ok: true });
    now = T0 + 12 * 3_600_000; // midnight: a new day's budget
    expect(await ledger.checkUserLimits('alice')).toEqual({ ok: true });
    await expect(ledger.setLimits('alice', { rpm: 0 })).rejects.toThrow();
    expect(await ledger.getLimits('alice')).toEqual({ dailyBudgetUsd: 1 });
  });

  it('enforces per-user RPM together across two instances sharing Redis', async () => {
    now = T0;
    const prefix = `test-usage-rpm-${randomUUID()}`;
    const a = ledgerOn(redisStore(prefix)); // two connections, as two gateway processes would have
    const b = ledgerOn(redisStore(prefix));
    await a.setLimits('alice', { rpm: 3 });
    expect(await a.checkUserLimits('alice')).toEqual({ ok: true });
    now += 10_000;
    expect(await b.checkUserLimits('alice')).toEqual({ ok: true });
    now += 10_000;
    expect(await a.checkUserLimits('alice')).toEqual({ ok: true });
    now += 10_000;
    // Fourth request within the minute, on either instance: refused until the first leaves the window.
    expect(await b.checkUserLimits('alice')).toEqual({ ok: false, refused: 'rpm', retryAfterMs: 30_000 });
    expect(await a.checkUserLimits('alice')).toEqual({ ok: false, refused: 'rpm', retryAfterMs: 30_000 });
    expect(await a.checkUserLimits('bob')).toEqual({ ok: true }); // no limit set for bob
    now = T0 + 60_000;
    expect(await b.checkUserLimits('alice')).toEqual({ ok: true });
  });

  it('keeps usage recorded while the store is down and writes it when it returns', async () => {
    now = T0;
    const memory = createMemoryDocStore({ clock });
    const { store, state } = flaky(memory);
    const ledger = ledgerOn(store);
    await ledger.record('alice', { inputTokens: 10, outputTokens: 5, costUsd: 0.01 });
    state.down = true;
    expect(await ledger.record('alice', { inputTokens: 20, outputTokens: 10, costUsd: 0.02 })).toEqual({ buffered: true });
    expect(await ledger.record('alice', { inputTokens: 30, outputTokens: 15, costUsd: 0.03 })).toEqual({ buffered: true });
    await ledger.flush(); // still down: nothing lost
    expect(ledger.pending).toBe(1);
    expect((await ledger.mine('alice', { from: '2025-06-10', to: '2025-06-10' })).requests).toBe(1);
    // While buffered, the budget check still counts the buffered cost.
    await ledger.setLimits('alice', { dailyBudgetUsd: 0.06 });
    expect(await ledger.checkUserLimits('alice')).toMatchObject({ ok: false, refused: 'budget' });
    state.down = false;
    expect(await ledger.record('alice', { inputTokens: 40, outputTokens: 20, costUsd: 0.04 })).toEqual({ buffered: false });
    expect(ledger.pending).toBe(0);
    expect(await ledger.mine('alice', { from: '2025-06-10', to: '2025-06-10' })).toMatchObject({ requests: 4, inputTokens: 100, outputTokens: 50, costUsd: 0.1 });
  });

  it('survives a real Redis going away and coming back on the same port', async () => {
    now = T0;
    const server = await startRedisServer();
    // Fail fast while disconnected instead of queueing: the ledger's outbox is the buffer.
    const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    redis.on('error', () => {});
    try {
      await new Promise((resolve) => redis.once('ready', resolve));
      const ledger = ledgerOn(createRedisDocStore({ redis, prefix: 'outbox' }));
      expect(await ledger.record('alice', { inputTokens: 1, outputTokens: 1, costUsd: 0.001 })).toEqual({ buffered: false });
      const closed = new Promise((resolve) => redis.once('close', resolve));
      await server.stop();
      await closed;
      expect(await ledger.record('alice', { inputTokens: 2, outputTokens: 2, costUsd: 0.002 })).toEqual({ buffered: true });
      const ready = new Promise((resolve) => redis.once('ready', resolve));
      const restarted = await startRedisServer(server.port);
      try {
        await ready;
        await ledger.flush();
        expect(ledger.pending).toBe(0);
        // The restarted Redis is empty (no persistence): exactly the buffered usage arrived.
        expect(await ledger.mine('alice', { from: '2025-06-10', to: '2025-06-10' })).toMatchObject({ requests: 1, inputTokens: 2, costUsd: 0.002 });
      } finally {
        redis.disconnect();
        await restarted.stop();
      }
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });

  it('issue 24.2: an absurd range is refused from its two dates, without building a day list', async () => {
    const ledger = ledgerOn(createMemoryDocStore({ clock }));
    const store = createMemoryDocStore({ clock });
    const read = vi.spyOn(store, 'counters');
    const strict = ledgerOn(store);
    const started = performance.now();
    for (const range of [{ from: '0000-01-01', to: '9999-12-31' }, { from: '2025-02-30', to: '2025-03-01' }, { from: '2025-06-11', to: '2025-06-10' }]) {
      await expect(strict.mine('alice', range)).rejects.toMatchObject({ name: 'UsageError', code: 'invalid' });
      await expect(strict.byUser(range)).rejects.toMatchObject({ name: 'UsageError', code: 'invalid' });
    }
    expect(performance.now() - started).toBeLessThan(1_000); // 4.3 s per call before
    expect(read).not.toHaveBeenCalled();
    // 366 days is the most; a leap year fits.
    expect((await strict.mine('alice', { from: '2024-01-01', to: '2024-12-31' })).requests).toBe(0);
    await expect(ledger.mine('alice', { from: '2024-01-01', to: '2025-01-01' })).rejects.toThrow(/at most 366 days/);
  });

  it('issue 24.8: a batch whose reply was lost (Redis applied it) is retried and counted once', async () => {
    now = T0;
    const store = redisStore(`test-usage-once-${randomUUID()}`);
    let loseNextReply = true;
    const lossy: DocStore = {
      ...store,
      applyOnce: async (batch) => {
        const applied = await store.applyOnce(batch);
        if (loseNextReply) {
          loseNextReply = false;
          throw new Error('Command timed out'); // applied, but the reply never came
        }
        return applied;
      },
    };
    const ledger = ledgerOn(lossy);
    for (let i = 0; i < 3; i++) ledger.recordSoon('alice', { inputTokens: 10, outputTokens: 5, costUsd: 0.01 });
    ledger.recordSoon('bob', { inputTokens: 1, outputTokens: 1, costUsd: 0.001 });
    await ledger.flush();
    expect(ledger.pending).toBe(2); // not confirmed: kept, same batch id
    ledger.recordSoon('alice', { inputTokens: 10, outputTokens: 5, costUsd: 0.01 }); // meanwhile: a new batch
    await ledger.flush();
    expect(ledger.pending).toBe(0);
    expect(await ledger.mine('alice', { from: '2025-06-10', to: '2025-06-10' })).toMatchObject({ requests: 4, inputTokens: 40, outputTokens: 20, costUsd: 0.04 });
    expect(await ledger.mine('bob', { from: '2025-06-10', to: '2025-06-10' })).toMatchObject({ requests: 1 });
    await ledger.close();
  });

  it('issue 24.3: parallel admissions on two instances reserve the budget; settling replaces a hold by the actual cost', async () => {
    now = T0;
    const prefix = `test-usage-holds-${randomUUID()}`;
    const a = new UsageLedger({ store: redisStore(prefix), clock, flushIntervalMs: null, holdTtlMs: 60_000 });
    const b = new UsageLedger({ store: redisStore(prefix), clock, flushIntervalMs: null, holdTtlMs: 60_000 });
    await a.setLimits('alice', { dailyBudgetUsd: 0.01 });
    // 40 parallel requests that may cost up to $0.003 each: admitted while spent + held < $0.01.
    const admitted = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).admit('alice', 0.003)));
    const holds = admitted.filter((r) => r.ok);
    expect(holds).toHaveLength(4); // held 0, 0.003, 0.006, 0.009: then 0.012 >= 0.01
    expect(admitted.find((r) => !r.ok)).toMatchObject({ refused: 'budget', heldInFlight: true, retryAfterMs: 1_000 });
    // Each settles at a third of its bound: the holds go, the actual cost counts, room again.
    holds.forEach((r, i) => (i % 2 ? a : b).recordSoon('alice', { inputTokens: 1, outputTokens: 1, costUsd: 0.001 }, r.ok ? r.hold : null));
    // Until the write lands the holds count (not the buffered cost as well): still full.
    expect(await a.admit('alice', 0.003)).toMatchObject({ ok: false, heldInFlight: true });
    await Promise.all([a.flush(), b.flush()]);
    expect((await a.mine('alice', { from: '2025-06-10', to: '2025-06-10' })).costUsd).toBeCloseTo(0.004, 9);
    // 0.004 spent: admitted at 0.004 and 0.007 held, then full.
    expect((await b.admit('alice', 0.003)).ok).toBe(true);
    expect((await a.admit('alice', 0.003)).ok).toBe(true);
    expect(await b.admit('alice', 0.003)).toMatchObject({ ok: false, heldInFlight: true });
    // An instance that died with its holds: they expire, the budget frees.
    now += 60_001;
    expect((await b.admit('alice', 0.003)).ok).toBe(true);
    // Spent out: refused until midnight, whatever is held.
    a.recordSoon('alice', { inputTokens: 1, outputTokens: 1, costUsd: 0.01 });
    await a.flush();
    expect(await b.admit('alice', 0)).toEqual({ ok: false, refused: 'budget', retryAfterMs: 12 * 3_600_000 - 60_001 });
    await Promise.all([a.close(), b.close()]);
  });
});

describe.each([
  ['40-hex', 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3'],
  ['64-hex', '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'],
])('issue 24.10: a user whose id (OIDC sub) is %s', (_name, userId) => {
  it('is limited (RPM and budget), billed, and reported under the real id, across two instances', async () => {
    now = T0;
    const prefix = `test-usage-hexid-${randomUUID()}`;
    const a = ledgerOn(redisStore(prefix));
    const b = ledgerOn(redisStore(prefix));
    expect(await a.setLimits(userId, { rpm: 2, dailyBudgetUsd: 1 })).toEqual({ rpm: 2, dailyBudgetUsd: 1 });
    expect(await b.getLimits(userId)).toEqual({ rpm: 2, dailyBudgetUsd: 1 });
    expect(await a.checkUserLimits(userId)).toEqual({ ok: true });
    expect(await b.checkUserLimits(userId)).toEqual({ ok: true });
    expect(await a.checkUserLimits(userId)).toMatchObject({ ok: false, refused: 'rpm' });

    // Written to the store (not kept in the outbox), so the other instance counts it.
    expect(await a.record(userId, { inputTokens: 10, outputTokens: 5, costUsd: 0.6 })).toEqual({ buffered: false });
    expect(await a.record(userId, { inputTokens: 1, outputTokens: 1, costUsd: 0.4 })).toEqual({ buffered: false });
    expect(a.pending).toBe(0);
    now = T0 + 60_000; // the RPM window has moved on: now the budget refuses
    expect(await b.checkUserLimits(userId)).toMatchObject({ ok: false, refused: 'budget' });

    const range = { from: '2025-06-10', to: '2025-06-10' };
    expect(await b.mine(userId, range)).toMatchObject({ userId, requests: 2, inputTokens: 11, outputTokens: 6, costUsd: 1 });
    await a.record('alice', { inputTokens: 1, outputTokens: 1, costUsd: 0.1 });
    expect((await b.byUser(range)).map((u) => [u.userId, u.requests, u.costUsd])).toEqual([
      [userId, 2, 1],
      ['alice', 1, 0.1],
    ]);
  });
});
