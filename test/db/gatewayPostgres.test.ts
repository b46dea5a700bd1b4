import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../server/db/migrations';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { startRedisServer, type RedisServer } from '../support/redisServer';
import { waitFor } from '../ops/waitFor';

/**
 * Issue 23 over real gateways with DATABASE_URL and REDIS_URL: business config, catalog edits and
 * BYOK keys live in PostgreSQL, so a Redis that loses everything (FLUSHALL: what a restart
 * without persistence leaves) loses none of them; change notifications still cross instances.
 * Its own redis-server: FLUSHALL on the shared one would empty other test files' keys.
 */

const ALICE_KEY = 'sk-test-pg-alice-0123456789abcdef';
const chat = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hello postgres' }] };
const PINNED = { id: 'pinned-4o', provider: 'openai' as const, upstream_model: 'gpt-4o-2024-11-20', display_name: 'Pinned 4o', input_price: 2.5, output_price: 10, is_active: true, fallbacks: ['gpt-4o-mini'] };

let db: TestDatabase;
let redisServer: RedisServer;
let raw: Redis;
const gateways: TestGateway[] = [];
let env: Record<string, string>;

beforeAll(async () => {
  [db, redisServer] = await Promise.all([createTestDatabase(), startRedisServer()]);
  raw = new Redis(redisServer.url);
  env = { REDIS_URL: redisServer.url, DATABASE_URL: db.url, ENCRYPTION_KEY: randomBytes(32).toString('hex') };
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await raw?.quit();
  await redisServer?.stop();
  await db?.drop();
});

async function start(): Promise<TestGateway> {
  const gw = await startTestGateway({ env });
  gateways.push(gw);
  return gw;
}

describe('a gateway on PostgreSQL and Redis (issue 23)', () => {
  it('issue 23: two instances starting at once apply the schema once; a Redis FLUSHALL loses no config, catalog edit or BYOK key', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    // Both started (without the advisory lock the second would fail on "relation already exists").
    const migrations = await db.pool.query<{ id: string }>('SELECT id FROM schema_migrations ORDER BY id');
    expect(migrations.rows.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
    const readyz = await (await fetch(`${a.url}/readyz`)).json();
    expect(readyz.checks).toMatchObject({ store: 'ok', database: 'ok' });

    const [admin, alice] = await Promise.all([a.token('root', 'admin'), a.token('alice')]);
    const adminA = a.trpc(admin);
    await adminA.config.set.mutate({ key: 'markup_percentage', value: 45 });
    await adminA.models.upsert.mutate(PINNED);
    await adminA.models.setActive.mutate({ id: 'grok-3', is_active: false });
    const added = await a.trpc(alice).byok.add.mutate({ provider: 'openai', apiKey: ALICE_KEY, label: 'mine' });
    await a.trpc(alice).byok.setSettings.mutate({ fallbackToSharedPool: false });

    // Nothing of it went to Redis.
    expect(await raw.keys('*business:*')).toEqual([]);
    expect(await raw.keys('*byok:*')).toEqual([]);

    await raw.flushall();

    for (const gw of [a, b]) {
      const config = await gw.trpc(admin).config.get.query();
      expect(config.settings.markup_percentage).toBe(45);
      expect(config.models.find((m) => m.id === 'pinned-4o')).toMatchObject(PINNED);
      expect(config.models.find((m) => m.id === 'grok-3')?.is_active).toBe(false);
      expect(await gw.trpc(alice).byok.list.query()).toMatchObject([{ id: added.id, mask: added.mask, status: 'ok' }]);
      expect(await gw.trpc(alice).byok.settings.query()).toEqual({ fallbackToSharedPool: false });
    }
    // Alice's key still opens and serves her, on the other instance.
    const before = b.gateway.mock!.statsFor(ALICE_KEY).total.requests;
    await b.trpc(alice).chat.complete.mutate(chat);
    expect(b.gateway.mock!.statsFor(ALICE_KEY).total.requests).toBe(before + 1);

    // After the flush a change on one instance still reaches the other (pub/sub is not data).
    expect((await b.trpc(alice).models.list.query()).some((m) => m.id === 'pinned-4o')).toBe(true);
    await adminA.models.setActive.mutate({ id: 'pinned-4o', is_active: false });
    await waitFor(async () => !(await b.trpc(alice).models.list.query()).some((m) => m.id === 'pinned-4o'), 'instance b to drop pinned-4o');

    // A fresh instance after another flush reads it all from PostgreSQL, and seeds nothing over it.
    await raw.flushall();
    const c = await start();
    const config = await c.trpc(admin).config.get.query();
    expect(config.settings.markup_percentage).toBe(45);
    expect(config.models.find((m) => m.id === 'pinned-4o')?.is_active).toBe(false);
    expect(await c.trpc(alice).byok.list.query()).toMatchObject([{ id: added.id }]);
  });
});
