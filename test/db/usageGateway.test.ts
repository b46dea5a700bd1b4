import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ModelEntryInput } from '../../shared/business';
import { maxCost } from '../../server/business/cost';
import { promptTokensAtMost } from '../../server/business/countPromptTokens';
import { runMigrations } from '../../server/db/migrate';
import { waitFor } from '../ops/waitFor';
import { startTestGateway } from '../support/gatewayHarness';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/** Issue 23 over real HTTP: two gateways sharing Redis, their usage ledger on PostgreSQL. */

let db: TestDatabase;
let redis: Redis;
beforeAll(async () => {
  db = await createTestDatabase();
  await runMigrations(db.pool);
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await redis?.quit();
  await db?.drop();
});

const today = () => new Date().toISOString().slice(0, 10);

describe('usage on PostgreSQL behind two gateways (issue 23)', () => {
  it('issue 23: a daily budget holds under parallel requests on two instances, usage pages come from SQL, and a Redis flush loses none of it', async () => {
    const prefix = `kr-pgusage-gw-${process.pid}-${Date.now()}`;
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix };
    const one = await startTestGateway({ env, usagePool: db.pool });
    const two = await startTestGateway({ env, usagePool: db.pool });
    try {
      const pricey: ModelEntryInput = { id: 'pg-budget', provider: 'openai', display_name: 'PG budget', input_price: 10, output_price: 50, is_active: true, fallbacks: [] };
      const admin = one.trpc(await one.token('root', 'admin'));
      await admin.models.upsert.mutate(pricey);
      await admin.users.setLimits.mutate({ userId: 'pg-spender', limits: { dailyBudgetUsd: 0.01 } });
      await waitFor(async () => (await two.gateway.business.resolve('pg-budget')) !== null, 'the model on instance two');
      await waitFor(async () => (await two.gateway.deps.domain!.ledger.getLimits('pg-spender')).dailyBudgetUsd === 0.01, 'the budget on instance two');

      const messages = [{ role: 'user' as const, content: 'spend my budget' }];
      const maxTokens = 40;
      const oneRequestAtMost = maxCost([{ provider: 'openai', inputPrice: 10, outputPrice: 50 }], promptTokensAtMost(messages), maxTokens, await one.gateway.business.getSettings());
      const tokens = [await one.token('pg-spender'), await two.token('pg-spender')];
      const results = await Promise.allSettled(
        Array.from({ length: 60 }, (_, i) => (i % 2 ? two : one).openai(tokens[i % 2]!).chat.completions.create({ model: 'pg-budget', messages, max_tokens: maxTokens })),
      );
      const served = results.filter((r) => r.status === 'fulfilled').length;
      await waitFor(() => one.gateway.deps.domain!.ledger.pending === 0 && two.gateway.deps.domain!.ledger.pending === 0, 'both outboxes in PostgreSQL');
      const mine = await two.trpc(tokens[1]!).usage.mine.query();
      expect(served).toBeGreaterThan(0);
      expect(served).toBeLessThan(60);
      expect(mine.requests).toBe(served);
      expect(mine.costUsd).toBeLessThanOrEqual(0.01 + oneRequestAtMost);
      expect(mine.days[0]!.models).toEqual([expect.objectContaining({ model: 'pg-budget', requests: served })]);
      const { rows } = await db.pool.query<{ n: string }>("SELECT sum(requests)::text AS n FROM usage_daily WHERE user_id = 'pg-spender'");
      expect(rows[0]!.n).toBe(String(served));

      // Pages over tRPC; a bad cursor is a 400.
      await one.trpc(await one.token('pg-other')).chat.complete.mutate({ model: 'pg-budget', messages, maxTokens: 5 });
      await waitFor(() => one.gateway.deps.domain!.ledger.pending === 0, 'the other user in PostgreSQL');
      const first = await admin.usage.byUserPage.query({ limit: 1 });
      const second = await admin.usage.byUserPage.query({ limit: 1, cursor: first.nextCursor! });
      expect(second.nextCursor).toBeNull();
      const paged = [...first.users, ...second.users];
      expect(paged.map((u) => u.userId).sort()).toEqual(['pg-other', 'pg-spender']);
      expect(paged[0]!.costUsd).toBeGreaterThanOrEqual(paged[1]!.costUsd); // highest cost first
      expect(paged.find((u) => u.userId === 'pg-other')).toMatchObject({ requests: 1 });
      expect((await admin.usage.byUser.query({ limit: 1, cursor: first.nextCursor! })).map((u) => u.userId)).toEqual([second.users[0]!.userId]);
      const bad = await fetch(`${one.url}/trpc/usage.byUserPage?input=${encodeURIComponent(JSON.stringify({ cursor: 'garbage!!' }))}`, { headers: { authorization: `Bearer ${await one.token('root', 'admin')}` } });
      expect(bad.status).toBe(400);

      // Redis loses everything of this deployment: usage and limits are in PostgreSQL, the budget still refuses.
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
      expect((await two.trpc(tokens[1]!).usage.mine.query({ from: today(), to: today() })).requests).toBe(served);
      expect(await admin.users.limits.query({ userId: 'pg-spender' })).toEqual({ dailyBudgetUsd: 0.01 });
      // A budget of exactly what PostgreSQL says was spent today: refused, on a Redis that lost the spend.
      await admin.users.setLimits.mutate({ userId: 'pg-spender', limits: { dailyBudgetUsd: mine.costUsd } });
      await waitFor(async () => (await one.gateway.deps.domain!.ledger.getLimits('pg-spender')).dailyBudgetUsd === mine.costUsd, 'the new budget on instance one');
      await expect(one.openai(tokens[0]!).chat.completions.create({ model: 'pg-budget', messages, max_tokens: maxTokens })).rejects.toMatchObject({ status: 429 });
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });
});
