import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Keyring } from '../../server/byok/Keyring';
import { runMigrations } from '../../server/db/migrate';
import { createPgBusinessRecords, upsertSetting } from '../../server/db/pgBusinessRecords';
import { createPgByokRecords } from '../../server/db/pgByokRecords';
import { SecretGuardError } from '../../server/store/secretGuard';
import { DEFAULT_BUSINESS_CONFIG } from '../../server/business/BusinessConfig';
import type { ModelEntry } from '../../shared/business';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/** Issue 23: the secret guard on the SQL store. Every write path refuses a secret-looking value, names the field, writes nothing. */

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await runMigrations(db.pool);
});
afterAll(async () => {
  await db?.drop();
});

const SECRETS = ['sk-test-0123456789abcdefghijklmnop', 'AIzaTest-0123456789abcdefghijklmnopqrs', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl', 'a'.repeat(8) + '0123456789abcdef0123456789abcdef01234567'];

/** Every row of every business table as text. */
async function dumpAll(): Promise<string> {
  const out: string[] = [];
  for (const table of ['system_config', 'ai_models', 'user_api_keys', 'user_byok_settings']) {
    const { rows } = await db.pool.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${table} t`);
    out.push(...rows.map((r) => r.row));
  }
  return out.join('\n');
}

async function refused(write: Promise<unknown>, secret: string): Promise<SecretGuardError> {
  const error = await write.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SecretGuardError);
  expect((error as Error).message).not.toContain(secret);
  return error as SecretGuardError;
}

describe('the secret guard on PostgreSQL (issue 23)', () => {
  it('issue 23: refuses a secret in a setting, a model field, a seed, a BYOK label or a BYOK setting, and nothing reaches the database', async () => {
    const business = createPgBusinessRecords(db.pool);
    const byok = createPgByokRecords(db.pool);
    const keyring = new Keyring(randomBytes(32));
    const model = DEFAULT_BUSINESS_CONFIG.models[0]!;
    await business.putModel(model);
    for (const secret of SECRETS) {
      expect((await refused(business.setSetting('markup_percentage', secret as unknown as number), secret)).field).toBe('system_config.markup_percentage');
      await refused(upsertSetting(db.pool, 'free_text', { note: `see ${secret}` }), secret);
      await refused(business.putModel({ ...model, id: 'leaky', display_name: secret.slice(0, 80) }), secret);
      await refused(business.putModelIfPresent({ ...model, display_name: secret.slice(0, 80) }), secret);
      await refused(business.putModel({ ...model, id: 'leaky-caps', capabilities: { note: secret } } as unknown as ModelEntry), secret);
      await refused(business.seed({ ...DEFAULT_BUSINESS_CONFIG, models: [...DEFAULT_BUSINESS_CONFIG.models, { ...model, id: 'leaky-seed', display_name: secret.slice(0, 80) }] }), secret);
      const record = { id: '00000000-0000-4000-8000-000000000001', provider: 'openai' as const, label: secret, mask: 'sk-…mnop', createdAt: new Date().toISOString(), lastTest: null, sealed: keyring.seal('sk-test-plaintext-0123456789abcdef', 'aad') };
      await refused(byok.add('alice', record), secret);
      await refused(byok.replaceIfPresent('alice', record.id, record), secret);
      await refused(byok.setSettings('alice', { fallbackToSharedPool: true, note: secret } as unknown as { fallbackToSharedPool: boolean }), secret);
    }
    const dump = await dumpAll();
    for (const secret of SECRETS) expect(dump).not.toContain(secret.slice(0, 20));
    expect(await business.read()).toMatchObject({ seeded: false, models: [expect.objectContaining({ id: model.id, display_name: model.display_name })] });
    expect(await byok.list('alice')).toEqual([]);
    expect(await byok.settings('alice')).toBeNull();
  });
});
