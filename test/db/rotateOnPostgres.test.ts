import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByokVault } from '../../server/byok/ByokVault';
import { keyIdOf } from '../../server/byok/Keyring';
import { runMigrations } from '../../server/db/migrate';
import { createPgByokRecords } from '../../server/db/pgByokRecords';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { runCli as runCliScript } from '../support/runCli';

/** Issue 23: `npm run rotate-encryption-key` with DATABASE_URL re-seals the records in PostgreSQL. */

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await runMigrations(db.pool);
});
afterAll(async () => {
  await db?.drop();
});

const runCli = (env: Record<string, string>) => runCliScript('server/byok/rotateEncryptionKeyCli.ts', env);

describe('rotate-encryption-key on PostgreSQL (issue 23)', () => {
  it('issue 23: re-seals every record in user_api_keys under the new key (no REDIS_URL needed), printing no key', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const records = createPgByokRecords(db.pool);
    await new ByokVault({ store: createMemoryDocStore(), records, encryptionKey: oldKey }).add('alice', { provider: 'openai', apiKey: 'sk-test-pg-rotate-0123456789abcdef' });
    const { code, out } = await runCli({ DATABASE_URL: db.url, ENCRYPTION_KEY: newKey.toString('hex'), ENCRYPTION_KEY_PREVIOUS: oldKey.toString('hex') });
    expect(out).toContain('1 rotated');
    expect(code).toBe(0);
    expect(out).not.toContain(newKey.toString('hex'));
    expect(out).not.toContain('sk-test-pg-rotate');
    const kids = await db.pool.query<{ key_id: string }>('SELECT key_id FROM user_api_keys');
    expect(kids.rows).toEqual([{ key_id: keyIdOf(newKey) }]);
    const after = new ByokVault({ store: createMemoryDocStore(), records, encryptionKey: newKey });
    expect(await after.getSecrets('alice', 'openai')).toMatchObject([{ secret: 'sk-test-pg-rotate-0123456789abcdef' }]);
  });
});
