import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BusinessConfig } from '../../server/business/BusinessConfig';
import { ByokVault } from '../../server/byok/ByokVault';
import { UsageLedger } from '../../server/usage/UsageLedger';
import { describeMigration, migrateStore } from '../../server/db/migrateStore';
import { createPgBusinessRecords } from '../../server/db/pgBusinessRecords';
import { createPgByokRecords } from '../../server/db/pgByokRecords';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { runCli as runCliScript } from '../support/runCli';

/** Issue 23: `npm run migrate-store` copies a Redis-held store into PostgreSQL, idempotently, printing counts only. */

const runCli = (env: Record<string, string>) => runCliScript('server/db/migrateStoreCli.ts', env);

const KEY_A = 'sk-test-migrate-alice-0123456789abcdef';
const KEY_B = 'sk-test-migrate-hexuser-0123456789abcdef';
const HEX_USER = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

let db: TestDatabase;
const redis = new Redis(inject('redisUrl'));
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await redis.quit();
  await db?.drop();
});

describe('npm run migrate-store (issue 23)', () => {
  it('issue 23: says both REDIS_URL and DATABASE_URL are needed', async () => {
    const { code, out } = await runCli({ REDIS_URL: inject('redisUrl') });
    expect(code).toBe(2);
    expect(out).toContain('DATABASE_URL');
  });

  it('issue 23: copies config, catalog, BYOK keys (ciphertext as is), settings and usage from Redis; a second run writes nothing; no secret printed', async () => {
    const prefix = `test-migrate-${randomUUID().slice(0, 8)}`;
    const encryptionKey = randomBytes(32);
    const source = createRedisDocStore({ redis, prefix });
    const config = new BusinessConfig({ store: source });
    await config.init();
    await config.setConfig('markup_percentage', 42);
    await config.upsertModel({ id: 'pinned-4o', provider: 'openai', upstream_model: 'gpt-4o-2024-11-20', display_name: 'Pinned 4o', input_price: 2.5, output_price: 10, is_active: true, fallbacks: ['gpt-4o-mini'] });
    await config.setModelActive('grok-3', false);
    const vault = new ByokVault({ store: source, encryptionKey });
    const alices = await vault.add('alice', { provider: 'openai', apiKey: KEY_A, label: 'work' });
    await vault.test('alice', alices.id, async () => 'valid');
    await vault.add(HEX_USER, { provider: 'anthropic', apiKey: KEY_B });
    await vault.setSettings('alice', { fallbackToSharedPool: false });
    await vault.setSettings('settings-only', { fallbackToSharedPool: false });
    const models = (await config.getConfig()).models.length;
    await config.close();
    const ledger = new UsageLedger({ store: source, writeBehindMs: 0, flushIntervalMs: null });
    await ledger.record('alice', { inputTokens: 10, outputTokens: 20, costUsd: 0.5 });
    await ledger.close();

    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix, DATABASE_URL: db.url };
    const first = await runCli(env);
    expect(first.out).toContain('business settings: 4 written');
    expect(first.out).toContain(`models: ${models} written`);
    expect(first.out).toContain('BYOK keys (2 users): 2 written');
    expect(first.out).toContain('BYOK settings: 2 written');
    expect(first.code).toBe(0);
    expect(first.out).toContain('usage: 1 days copied (1 user-days), 0 already copied');
    for (const secret of [KEY_A, KEY_B, encryptionKey.toString('hex')]) expect(first.out).not.toContain(secret);
    const again = await runCli(env);
    expect(again.out).toContain('usage: 0 days copied (0 user-days), 1 already copied');
    const pgLedger = new UsageLedger({ store: createMemoryDocStore(), pool: db.pool, flushIntervalMs: null });
    const today = new Date().toISOString().slice(0, 10);
    expect(await pgLedger.mine('alice', { from: today, to: today })).toMatchObject({ requests: 1, inputTokens: 10, outputTokens: 20, costUsd: 0.5 });
    await pgLedger.close();

    // The second run in process (the command is this function and a print): the same counts text.
    const second = { out: describeMigration(await migrateStore(source, db.pool)).join('\n') };
    expect(second.out).toContain('business settings: 0 written, 4 already identical');
    expect(second.out).toContain(`models: 0 written, ${models} already identical`);
    expect(second.out).toContain('BYOK keys (2 users): 0 written, 2 already identical');
    expect(second.out).toContain('BYOK settings: 0 written, 2 already identical');

    // What a gateway on PostgreSQL now reads: the same config, and keys that open with the same ENCRYPTION_KEY.
    const fromPg = new BusinessConfig({ store: createMemoryDocStore(), records: createPgBusinessRecords(db.pool) });
    expect(await fromPg.init()).toEqual({ seeded: false }); // the marker came along: no defaults over the copy
    expect((await fromPg.getSettings()).markup_percentage).toBe(42);
    expect(await fromPg.resolve('pinned-4o')).toMatchObject({ upstreamModel: 'gpt-4o-2024-11-20', fallbacks: ['gpt-4o-mini'] });
    expect(await fromPg.resolve('grok-3')).toBeNull();
    const pgVault = new ByokVault({ store: createMemoryDocStore(), records: createPgByokRecords(db.pool), encryptionKey });
    expect(await pgVault.list('alice')).toEqual(await vault.list('alice'));
    expect(await pgVault.getSecrets('alice', 'openai')).toMatchObject([{ id: alices.id, secret: KEY_A }]);
    expect(await pgVault.getSecrets(HEX_USER, 'anthropic')).toMatchObject([{ secret: KEY_B }]);
    expect(await pgVault.getSettings('settings-only')).toEqual({ fallbackToSharedPool: false });
    await fromPg.close();
  });
});
