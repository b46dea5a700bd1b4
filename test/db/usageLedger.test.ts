import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { runMigrations } from '../../server/db/migrate';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { copyUsageFromDocStore } from '../../server/usage/copyUsageFromDocStore';
import type { UsagePool } from '../../server/usage/pgUsage';
import { UsageLedger } from '../../server/usage/UsageLedger';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/** Issue 23: the usage ledger with PostgreSQL as its record and Redis for the hot state. */

const T0 = Date.UTC(2025, 5, 10, 12, 0, 0); // 2025-06-10 12:00 UTC
let now = T0;
const clock = () => now;
const DAY = { from: '2025-06-10', to: '2025-06-10' };

let db: TestDatabase;
const redisClients: Redis[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
  await runMigrations(db.pool);
});
afterAll(async () => {
  await Promise.all(redisClients.map((r) => r.quit()));
  await db?.drop();
});

function redisStore(prefix: string) {
  const redis = new Redis(inject('redisUrl'));
  redisClients.push(redis);
  return { store: createRedisDocStore({ redis, prefix }), redis };
}

/** Every key of one prefix gone, as a FLUSHALL (or a restart without persistence) does to the whole Redis shared by other test files. */
async function flushPrefix(redis: Redis, prefix: string): Promise<void> {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
}

const ledgerOn = (prefix: string, pool: UsagePool = db.pool) => new UsageLedger({ store: redisStore(prefix).store, pool, clock, flushIntervalMs: null });

async function sql<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
  return (await db.pool.query<T>(text, values)).rows;
}

describe('usage ledger on PostgreSQL (issue 23)', () => {
  it('issue 23: records land in usage_events and the usage_daily rollup; mine and byUser read them, per day and per model', async () => {
    now = T0;
    const ledger = ledgerOn(`pgusage-${randomUUID()}`);
    for (let i = 0; i < 10; i++) await ledger.record('u-alice', { inputTokens: 100, outputTokens: 50, costUsd: 0.1, model: 'gpt-4o', provider: 'openai' });
    ledger.recordSoon('u-alice', { inputTokens: 1, outputTokens: 1, costUsd: 0.05, model: 'claude', provider: 'anthropic' });
    ledger.recordSoon('u-bob', { inputTokens: 7, outputTokens: 3, costUsd: 0.000001 });
    now = T0 + 12 * 3_600_000; // the next UTC day
    await ledger.record('u-alice', { inputTokens: 1, outputTokens: 2, costUsd: 0.5, model: 'gpt-4o' });
    expect(ledger.pending).toBe(0);

    const alice = await ledger.mine('u-alice', { from: '2025-06-09', to: '2025-06-11' });
    expect(alice).toEqual({
      userId: 'u-alice',
      requests: 12,
      inputTokens: 1002,
      outputTokens: 503,
      costUsd: 1.55,
      days: [
        {
          date: '2025-06-10',
          requests: 11,
          inputTokens: 1001,
          outputTokens: 501,
          costUsd: 1.05,
          models: [
            { model: 'claude', requests: 1, inputTokens: 1, outputTokens: 1, costUsd: 0.05 },
            { model: 'gpt-4o', requests: 10, inputTokens: 1000, outputTokens: 500, costUsd: 1 },
          ],
        },
        { date: '2025-06-11', requests: 1, inputTokens: 1, outputTokens: 2, costUsd: 0.5, models: [{ model: 'gpt-4o', requests: 1, inputTokens: 1, outputTokens: 2, costUsd: 0.5 }] },
      ],
    });
    const all = await ledger.byUser(DAY);
    expect(all.map((u) => [u.userId, u.requests, u.costUsd])).toEqual([
      ['u-alice', 11, 1.05],
      ['u-bob', 1, 0.000001],
    ]);
    expect(all[1]!.days).toEqual([{ date: '2025-06-10', requests: 1, inputTokens: 7, outputTokens: 3, costUsd: 0.000001 }]); // no model said: none listed
    // Append-only events, one per user-day-model of a batch, with the provider where known; the rollup sums them.
    const events = await sql<{ n: number; cost: string }>("SELECT count(*)::int AS n, sum(cost_nano)::text AS cost FROM usage_events WHERE user_id = 'u-alice'");
    expect(events[0]).toEqual({ n: 12, cost: String(1.55e9) });
    expect(await sql("SELECT DISTINCT provider FROM usage_events WHERE model = 'claude'")).toEqual([{ provider: 'anthropic' }]);
    await expect(ledger.mine('u-alice', { from: '2025-06-11', to: '2025-06-10' })).rejects.toMatchObject({ code: 'invalid' });
    await ledger.close();
  });

  it('issue 23: byUser pages with limit and cursor, highest cost first, and refuses a bad cursor', async () => {
    now = Date.UTC(2025, 6, 1, 12);
    const ledger = ledgerOn(`pgusage-page-${randomUUID()}`);
    // 9 users; two tie on cost (order by id then); costs of 8, 9 and 10 digits of nano-USD (ordered as numbers, not text).
    const costs: Record<string, number> = { p0: 1.5, p1: 0.7, p2: 0.6, p3: 0.5, p4: 0.5, p5: 0.3, p6: 0.2, p7: 0.1, p8: 0.05 };
    for (const [user, cost] of Object.entries(costs)) ledger.recordSoon(user, { inputTokens: 1, outputTokens: 1, costUsd: cost });
    await ledger.flush();
    const range = { from: '2025-07-01', to: '2025-07-01' };
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await ledger.byUserPage(range, { limit: 3, ...(cursor ? { cursor } : {}) });
      expect(page.users.length).toBeLessThanOrEqual(3);
      seen.push(...page.users.map((u) => u.userId));
      cursor = page.nextCursor ?? undefined;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']);
    expect((await ledger.byUserPage(range, { limit: 9 })).nextCursor).toBeNull();
    expect((await ledger.byUser(range)).map((u) => u.userId)).toEqual(seen);
    await expect(ledger.byUserPage(range, { cursor: 'not a cursor!' })).rejects.toMatchObject({ name: 'UsageError', code: 'invalid' });
    await expect(ledger.byUserPage(range, { limit: 0 })).rejects.toMatchObject({ code: 'invalid' });
    await ledger.close();
  });

  it('issue 23: limits live in user_limits and a change reaches the other instance at once', async () => {
    now = T0;
    const prefix = `pgusage-limits-${randomUUID()}`;
    const a = ledgerOn(prefix);
    const b = ledgerOn(prefix);
    await Promise.all([a.init(), b.init()]);
    expect(await b.getLimits('u-lim')).toEqual({});
    await a.setLimits('u-lim', { rpm: 5, dailyBudgetUsd: 2 });
    expect(await sql("SELECT limits FROM user_limits WHERE user_id = 'u-lim'")).toEqual([{ limits: { rpm: 5, dailyBudgetUsd: 2 } }]);
    await vi.waitFor(async () => expect(await b.getLimits('u-lim')).toEqual({ rpm: 5, dailyBudgetUsd: 2 }));
    await a.setLimits('u-lim', { rpm: 7 });
    await vi.waitFor(async () => expect(await b.getLimits('u-lim')).toEqual({ rpm: 7 }));
    await expect(a.setLimits('u-lim', { rpm: 0 })).rejects.toThrow();
    await Promise.all([a.close(), b.close()]);
  });

  it('issue 23: a batch whose COMMIT reply is lost is retried under the same id and counted once', async () => {
    now = T0;
    let loseNextCommit = true;
    const lossy = {
      query: db.pool.query.bind(db.pool),
      connect: async () => {
        const client = await db.pool.connect();
        return new Proxy(client, {
          get(target, prop, receiver) {
            if (prop !== 'query') {
              const value = Reflect.get(target, prop, receiver) as unknown;
              return typeof value === 'function' ? value.bind(target) : value;
            }
            return async (...args: Parameters<pg.PoolClient['query']>) => {
              const result = await (target.query as (...a: unknown[]) => Promise<unknown>)(...args);
              if (args[0] === 'COMMIT' && loseNextCommit) {
                loseNextCommit = false;
                throw new Error('Connection terminated unexpectedly'); // committed, but the reply never came
              }
              return result;
            };
          },
        });
      },
    } as unknown as UsagePool;
    const ledger = ledgerOn(`pgusage-once-${randomUUID()}`, lossy);
    for (let i = 0; i < 3; i++) ledger.recordSoon('u-once', { inputTokens: 10, outputTokens: 5, costUsd: 0.01 });
    ledger.recordSoon('u-once-b', { inputTokens: 1, outputTokens: 1, costUsd: 0.001 });
    await ledger.flush();
    expect(ledger.pending).toBe(2); // committed but not confirmed: kept, same batch id
    ledger.recordSoon('u-once', { inputTokens: 10, outputTokens: 5, costUsd: 0.01 }); // meanwhile: the next batch
    await ledger.flush();
    expect(ledger.pending).toBe(0);
    expect(await ledger.mine('u-once', DAY)).toMatchObject({ requests: 4, inputTokens: 40, outputTokens: 20, costUsd: 0.04 });
    expect(await ledger.mine('u-once-b', DAY)).toMatchObject({ requests: 1 });
    expect(await sql("SELECT count(*)::int AS n FROM usage_events WHERE user_id = 'u-once'")).toEqual([{ n: 2 }]);
    await ledger.close();
  });

  it('issue 23: parallel admissions on two instances reserve the budget against what PostgreSQL holds, with no database query per request', async () => {
    now = Date.UTC(2025, 7, 1, 12);
    const prefix = `pgusage-budget-${randomUUID()}`;
    const counted = (pool: pg.Pool) => {
      const calls = { n: 0 };
      const wrapped = { query: (...args: unknown[]) => ((calls.n += 1), (pool.query as (...a: unknown[]) => Promise<unknown>)(...args)), connect: pool.connect.bind(pool) } as unknown as UsagePool;
      return { wrapped, calls };
    };
    const qa = counted(db.pool);
    const qb = counted(db.pool);
    const a = new UsageLedger({ store: redisStore(prefix).store, pool: qa.wrapped, clock, flushIntervalMs: null, holdTtlMs: 60_000 });
    const b = new UsageLedger({ store: redisStore(prefix).store, pool: qb.wrapped, clock, flushIntervalMs: null, holdTtlMs: 60_000 });
    await Promise.all([a.init(), b.init()]);
    await a.setLimits('u-budget', { dailyBudgetUsd: 0.01 });
    // Spend recorded before (another instance, an earlier process): in PostgreSQL only.
    const before = ledgerOn(`pgusage-elsewhere-${randomUUID()}`);
    await before.record('u-budget', { inputTokens: 1, outputTokens: 1, costUsd: 0.004 });
    // 40 parallel requests of at most $0.003: admitted while spent ($0.004) + held < $0.01.
    const admitted = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).admit('u-budget', 0.003)));
    const holds = admitted.filter((r) => r.ok);
    expect(holds).toHaveLength(2); // held 0, 0.003 on 0.004 spent; then 0.010 >= 0.01
    expect(admitted.find((r) => !r.ok)).toMatchObject({ refused: 'budget', heldInFlight: true });
    // Seeded once: further admissions cost no PostgreSQL query (the limits are cached).
    const queriesBefore = qa.calls.n + qb.calls.n;
    for (let i = 0; i < 20; i++) await (i % 2 ? a : b).admit('u-budget', 0.003);
    expect(qa.calls.n + qb.calls.n).toBe(queriesBefore);
    // Each settles at a third of its bound: written to PostgreSQL, mirrored, holds released.
    holds.forEach((r, i) => (i % 2 ? a : b).recordSoon('u-budget', { inputTokens: 1, outputTokens: 1, costUsd: 0.001 }, r.ok ? r.hold : null));
    await Promise.all([a.flush(), b.flush()]);
    expect((await b.mine('u-budget', { from: '2025-08-01', to: '2025-08-01' })).costUsd).toBeCloseTo(0.006, 9);
    // 0.006 spent: admitted at 0 and 0.003 held, then full.
    expect((await a.admit('u-budget', 0.003)).ok).toBe(true);
    expect((await b.admit('u-budget', 0.003)).ok).toBe(true);
    expect(await a.admit('u-budget', 0.003)).toMatchObject({ ok: false, heldInFlight: true });
    // Spent out on one instance: the other refuses until midnight.
    a.recordSoon('u-budget', { inputTokens: 1, outputTokens: 1, costUsd: 0.004 });
    await a.flush();
    expect(await b.admit('u-budget', 0)).toEqual({ ok: false, refused: 'budget', retryAfterMs: 12 * 3_600_000 });
    await Promise.all([a.close(), b.close(), before.close()]);
  });

  it('issue 23: a Redis flush loses no usage and no limits, and the budget still holds after it', async () => {
    now = Date.UTC(2025, 8, 1, 12);
    const prefix = `pgusage-flush-${randomUUID()}`;
    const { store, redis } = redisStore(prefix);
    const a = new UsageLedger({ store, pool: db.pool, clock, flushIntervalMs: null });
    const b = ledgerOn(prefix);
    await a.setLimits('u-flush', { dailyBudgetUsd: 1, rpm: 1000 });
    const givenBack = await a.admit('u-flush', 0.05); // a request that produced nothing: no request recorded
    if (givenBack.ok && givenBack.hold) a.release('u-flush', givenBack.hold);
    for (let i = 0; i < 10; i++) {
      const admitted = await a.admit('u-flush', 0.05);
      expect(admitted.ok).toBe(true);
      a.recordSoon('u-flush', { inputTokens: 5, outputTokens: 5, costUsd: 0.1 }, admitted.ok ? admitted.hold : null);
    }
    await a.flush();
    await flushPrefix(redis, prefix); // counters, mirror, holds, windows, markers: all gone
    const range = { from: '2025-09-01', to: '2025-09-01' };
    expect(await b.mine('u-flush', range)).toMatchObject({ requests: 10, inputTokens: 50, outputTokens: 50, costUsd: 1 });
    expect(await b.getLimits('u-flush')).toEqual({ dailyBudgetUsd: 1, rpm: 1000 });
    // $1 spent of $1: refused on either instance, the mirror seeded again from PostgreSQL.
    expect(await b.admit('u-flush', 0.05)).toMatchObject({ ok: false, refused: 'budget' });
    expect(await a.admit('u-flush', 0.05)).toMatchObject({ ok: false, refused: 'budget' });
    await Promise.all([a.close(), b.close()]);
  });

  it('issue 23: copyUsageFromDocStore copies a Redis-held ledger and limits into PostgreSQL once', async () => {
    now = Date.UTC(2025, 9, 1, 12);
    const prefix = `pgusage-copy-${randomUUID()}`;
    const hexUser = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3'; // stored encoded in Redis (issue 24.10)
    const { store } = redisStore(prefix);
    const old = new UsageLedger({ store, clock, flushIntervalMs: null });
    await old.record('u-copy', { inputTokens: 3, outputTokens: 4, costUsd: 0.25 });
    await old.record(hexUser, { inputTokens: 1, outputTokens: 1, costUsd: 0.1 });
    now += 86_400_000;
    await old.record('u-copy', { inputTokens: 1, outputTokens: 1, costUsd: 0.5 });
    await old.setLimits(hexUser, { rpm: 9 });
    await old.setLimits('u-copy', { dailyBudgetUsd: 3 });
    await new UsageLedger({ store: redisStore(`pgusage-other-${randomUUID()}`).store, pool: db.pool }).setLimits('u-copy', { dailyBudgetUsd: 5 }); // set in PostgreSQL since: kept

    expect(await copyUsageFromDocStore(store, db.pool)).toMatchObject({ days: 2, skippedDays: 0, rows: 3 });
    expect(await copyUsageFromDocStore(store, db.pool)).toMatchObject({ days: 0, skippedDays: 2, rows: 0 }); // a second run counts nothing twice
    const ledger = ledgerOn(`pgusage-copied-${randomUUID()}`);
    expect(await ledger.mine('u-copy', { from: '2025-10-01', to: '2025-10-02' })).toMatchObject({ requests: 2, inputTokens: 4, outputTokens: 5, costUsd: 0.75 });
    expect(await ledger.mine(hexUser, { from: '2025-10-01', to: '2025-10-01' })).toMatchObject({ requests: 1, costUsd: 0.1 });
    expect(await ledger.getLimits(hexUser)).toEqual({ rpm: 9 });
    expect(await ledger.getLimits('u-copy')).toEqual({ dailyBudgetUsd: 5 });
    await Promise.all([old.close(), ledger.close()]);
  });
});
