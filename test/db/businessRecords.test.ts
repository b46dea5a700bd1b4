import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { BusinessConfig, DEFAULT_BUSINESS_CONFIG } from '../../server/business/BusinessConfig';
import { createDocStoreBusinessRecords, type BusinessConfigRecords } from '../../server/business/BusinessConfigRecords';
import { runMigrations } from '../../server/db/migrate';
import { createPgBusinessRecords } from '../../server/db/pgBusinessRecords';
import type { DocStore } from '../../server/store/DocStore';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { SecretGuardError } from '../../server/store/secretGuard';
import type { ModelEntry } from '../../shared/business';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/**
 * Issue 23: BusinessConfig's contract on both record backends, the DocStore (as before) and
 * PostgreSQL (DATABASE_URL), through the same domain class.
 */

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
beforeEach(async () => {
  await db.pool.query('TRUNCATE system_config, ai_models');
});

interface Backend {
  name: string;
  /** Records shared by every instance made from one `shared()` call; each instance its own notification store. */
  shared(): { records: BusinessConfigRecords; store(): DocStore };
}
const backends: Backend[] = [
  {
    name: 'docstore',
    shared() {
      const store = createMemoryDocStore();
      return { records: createDocStoreBusinessRecords(store), store: () => store };
    },
  },
  {
    name: 'postgres',
    shared: () => ({ records: createPgBusinessRecords(db.pool), store: () => createMemoryDocStore() }),
  },
];

const SECRET = 'sk-test-0123456789abcdefghijklmnop';

describe.each(backends)('BusinessConfig on the $name records (issue 23)', (backend) => {
  const make = (shared: ReturnType<Backend['shared']>, options: Partial<ConstructorParameters<typeof BusinessConfig>[0]> = {}) =>
    new BusinessConfig({ store: shared.store(), records: shared.records, ...options });

  it('seeds the defaults once, even with two instances starting at once; a later start keeps admin changes', async () => {
    const shared = backend.shared();
    const [a, b] = [make(shared), make(shared)];
    const seeds = await Promise.all([a.init(), b.init()]);
    expect(seeds.filter((s) => s.seeded)).toHaveLength(1);
    await a.setConfig('markup_percentage', 45);
    const c = make(shared);
    expect(await c.init()).toEqual({ seeded: false });
    expect((await c.getSettings()).markup_percentage).toBe(45);
    expect((await c.getConfig()).models).toHaveLength(DEFAULT_BUSINESS_CONFIG.models.length);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('a seed refused midway by the secret guard writes nothing; the next start seeds it all', async () => {
    const shared = backend.shared();
    const models = DEFAULT_BUSINESS_CONFIG.models;
    const broken = { ...DEFAULT_BUSINESS_CONFIG, models: [...models.slice(0, -1), { ...models.at(-1)!, display_name: SECRET }] };
    const failing = make(shared, { defaults: broken });
    const refused = failing.init();
    await expect(refused).rejects.toBeInstanceOf(SecretGuardError);
    await refused.catch((e: Error) => expect(e.message).not.toContain(SECRET));
    await failing.close();
    const stored = await shared.records.read();
    expect(stored).toMatchObject({ seeded: false, models: [] });
    expect(stored.settings.size).toBe(0);
    const next = make(shared);
    expect(await next.init()).toEqual({ seeded: true });
    expect((await next.getConfig()).models).toHaveLength(models.length);
    await next.close();
  });

  it('validates settings, upserts and deactivates models, refuses a secret in any field', async () => {
    const shared = backend.shared();
    const config = make(shared);
    await config.init();
    await expect(config.setConfig('prompt_soft_limit', 20_000)).rejects.toMatchObject({ code: 'invalid' });
    await config.upsertModel({ id: 'my-model', provider: 'openai', upstream_model: 'gpt-4o-2024-11-20', display_name: 'Pinned 4o', input_price: 0.075, output_price: 0.0000001, is_active: true, fallbacks: ['gpt-4o-mini'] });
    expect(await config.resolve('my-model')).toMatchObject({ upstreamModel: 'gpt-4o-2024-11-20', inputPrice: 0.075, outputPrice: 0.0000001, fallbacks: ['gpt-4o-mini'] });
    await expect(config.upsertModel({ id: 'x', provider: 'openai', display_name: 'X', input_price: 1, output_price: 1, is_active: true, fallbacks: ['ghost'] })).rejects.toMatchObject({ code: 'invalid' });
    const leak = config.upsertModel({ id: 'leaky', provider: 'openai', display_name: SECRET, input_price: 1, output_price: 1, is_active: true });
    await expect(leak).rejects.toBeInstanceOf(SecretGuardError);
    expect(await shared.records.model('leaky')).toBeNull();
    await config.setModelActive('grok-3', false);
    expect(await config.resolve('xai/grok-3')).toBeNull();
    expect((await config.getConfig()).models.find((m) => m.id === 'grok-3')?.is_active).toBe(false);
    await config.setModelActive('grok-3', true);
    expect(await config.resolve('grok-3')).not.toBeNull();
    await expect(config.setModelActive('missing', true)).rejects.toMatchObject({ code: 'not_found' });
    // A fresh instance reads it all back from the records.
    const other = make(shared);
    await other.init();
    // An entry upserted without capabilities gets none (plain text only; not in defaults.json).
    expect((await other.getConfig()).models.find((m) => m.id === 'my-model')).toEqual({ id: 'my-model', provider: 'openai', upstream_model: 'gpt-4o-2024-11-20', display_name: 'Pinned 4o', input_price: 0.075, output_price: 0.0000001, is_active: true, fallbacks: ['gpt-4o-mini'], capabilities: { tools: false, vision: false, json_schema: false, reasoning: false }, kind: 'chat' });
    await Promise.all([config.close(), other.close()]);
  });

  it('a catalog entry with fields the schema grows (capabilities and others) round-trips unchanged', async () => {
    const { records } = backend.shared();
    const entry = {
      id: 'vision-model',
      provider: 'google',
      display_name: 'Vision',
      input_price: 1.25,
      output_price: 5,
      is_active: false,
      fallbacks: [],
      capabilities: { tools: true, vision: true, contextWindow: 1_000_000, modalities: ['text', 'image'] },
      context_window: 1_000_000,
    } as unknown as ModelEntry;
    await records.putModel(entry);
    expect(await records.model('vision-model')).toEqual(entry);
    const withNull = { ...entry, id: 'null-caps', capabilities: null } as unknown as ModelEntry;
    await records.putModel(withNull);
    expect(await records.model('null-caps')).toEqual(withNull);
    expect(await records.putModelIfPresent({ ...entry, id: 'absent' })).toBe(false);
    expect(await records.model('absent')).toBeNull();
  });

  it('another instance sharing the records sees a change within maxAgeMs, without any notification', async () => {
    const shared = backend.shared();
    let now = 0;
    const writer = make(shared);
    const reader = make(shared, { clock: () => now, maxAgeMs: 1000 });
    await Promise.all([writer.init(), reader.init()]);
    expect(await reader.resolve('gpt-4o')).not.toBeNull();
    await writer.setModelActive('gpt-4o', false);
    if (backend.name === 'postgres') expect(await reader.resolve('gpt-4o')).not.toBeNull(); // its own store heard nothing: still the snapshot
    now = 1000;
    expect(await reader.resolve('gpt-4o')).toBeNull();
    await Promise.all([writer.close(), reader.close()]);
  });
});

describe('BusinessConfig on PostgreSQL with Redis notifications (issue 23)', () => {
  it('a change on one instance drops the snapshot of another at once (Redis pub/sub), the data coming from PostgreSQL', async () => {
    const prefix = `test-pgbiz-${randomUUID()}`;
    const storeOf = () => {
      const redis = new Redis(inject('redisUrl'));
      redisClients.push(redis);
      return createRedisDocStore({ redis, prefix });
    };
    const records = createPgBusinessRecords(db.pool);
    const [storeA, storeB] = [storeOf(), storeOf()];
    const a = new BusinessConfig({ store: storeA, records });
    const b = new BusinessConfig({ store: storeB, records, maxAgeMs: 60_000 });
    await Promise.all([a.init(), b.init()]);
    expect(await b.resolve('gpt-4o')).not.toBeNull(); // b's snapshot is warm, and trusted for a minute
    let notified!: () => void;
    const changed = new Promise<void>((resolve) => (notified = resolve));
    const unsubscribe = await b.onChange(notified);
    await a.setModelActive('gpt-4o', false);
    await changed;
    expect(await b.resolve('gpt-4o')).toBeNull();
    // Nothing of the business data went to Redis.
    const raw = new Redis(inject('redisUrl'));
    redisClients.push(raw);
    expect(await raw.keys(`${prefix}:*business*`)).toEqual([]);
    await unsubscribe();
    await Promise.all([a.close(), b.close(), storeA.close(), storeB.close()]);
  });
});
