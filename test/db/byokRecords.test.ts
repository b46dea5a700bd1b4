import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createDocStoreByokRecords, type ByokRecords } from '../../server/byok/ByokRecords';
import { ByokVault, type ByokKeyTester } from '../../server/byok/ByokVault';
import { keyIdOf } from '../../server/byok/Keyring';
import { runMigrations } from '../../server/db/migrate';
import { createPgByokRecords } from '../../server/db/pgByokRecords';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { Sealed, type SealedEnvelope } from '../../server/store/Sealed';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/**
 * Issue 23: the BYOK vault's contract on both record backends, the DocStore (as before) and
 * PostgreSQL (`user_api_keys`, DATABASE_URL), through the same vault.
 */

const KEY_A = 'sk-test-alice-0123456789abcdefghijklmnop';
const KEY_B = 'sk-test-ant-bob-0123456789abcdefghijklm';
const HEX_USER = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3';
const newKey = () => randomBytes(32);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await runMigrations(db.pool);
});
afterAll(async () => {
  await db?.drop();
});
beforeEach(async () => {
  await db.pool.query('TRUNCATE user_api_keys, user_byok_settings');
});

interface Backend {
  name: string;
  records(): ByokRecords;
}
const backends: Backend[] = [
  { name: 'docstore', records: () => createDocStoreByokRecords(createMemoryDocStore()) },
  { name: 'postgres', records: () => createPgByokRecords(db.pool) },
];

/** Writes a modified copy of a stored record, as someone with write access to the database could. */
async function tamperWith(records: ByokRecords, userId: string, id: string, change: (e: SealedEnvelope) => SealedEnvelope, asUser = userId) {
  const record = (await records.get(userId, id)) as Parameters<ByokRecords['add']>[1] & { sealed: SealedEnvelope };
  const copy = { ...record, sealed: new Sealed(change(record.sealed)) };
  if (!(await records.replaceIfPresent(asUser, id, copy))) await records.add(asUser, copy);
}
const flipFirstByte = (b64: string) => {
  const bytes = Buffer.from(b64, 'base64');
  bytes[0] = bytes[0]! ^ 1;
  return bytes.toString('base64');
};

describe.each(backends)('ByokVault on the $name records (issue 23)', (backend) => {
  const vaultOn = (records: ByokRecords, encryptionKey = newKey(), previousEncryptionKey: Buffer | null = null, clock?: () => number) =>
    new ByokVault({ store: createMemoryDocStore(), records, encryptionKey, previousEncryptionKey, ...(clock ? { clock } : {}) });

  it('round-trips a key: add, list masked, test, use, settings, remove', async () => {
    const records = backend.records();
    const vault = vaultOn(records, newKey(), null, () => Date.UTC(2025, 0, 2, 3, 4, 5, 678));
    const added = await vault.add('alice', { provider: 'openai', apiKey: KEY_A, label: 'work' });
    expect(added).toMatchObject({ provider: 'openai', label: 'work', mask: 'sk-…mnop', lastTest: null, createdAt: '2025-01-02T03:04:05.678Z' });
    expect(await vault.list('alice')).toEqual([{ ...added, status: 'ok' }]);
    expect(await vault.getSecrets('alice', 'openai')).toEqual([{ id: added.id, provider: 'openai', label: 'work', mask: 'sk-…mnop', secret: KEY_A }]);
    const tester = vi.fn<ByokKeyTester>(async () => 'rejected');
    expect(await vault.test('alice', added.id, tester)).toBe('rejected');
    expect(tester).toHaveBeenCalledWith('openai', KEY_A);
    expect((await vault.list('alice'))[0]).toMatchObject({ createdAt: added.createdAt, lastTest: { result: 'rejected', at: '2025-01-02T03:04:05.678Z' }, status: 'ok' });
    expect(await vault.getSettings('alice')).toEqual({ fallbackToSharedPool: true });
    await vault.setSettings('alice', { fallbackToSharedPool: false });
    expect(await vault.getSettings('alice')).toEqual({ fallbackToSharedPool: false });
    expect(await vault.routing('alice')).toEqual({ providers: new Set(['openai']), fallbackToSharedPool: false });
    await expect(vault.add('alice', { provider: 'openai', apiKey: KEY_A })).rejects.toMatchObject({ code: 'duplicate' });
    await vault.remove('alice', added.id);
    expect(await vault.list('alice')).toEqual([]);
    await expect(vault.remove('alice', added.id)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('scopes every record to its user; a copy into another user, or a tampered envelope, lists as corrupt and is never used', async () => {
    const records = backend.records();
    const vault = vaultOn(records);
    const alices = await vault.add('alice', { provider: 'openai', apiKey: KEY_A });
    const tester = vi.fn<ByokKeyTester>(async () => 'valid');
    expect(await vault.list('mallory')).toEqual([]);
    await expect(vault.test('mallory', alices.id, tester)).rejects.toMatchObject({ code: 'not_found' });
    await expect(vault.remove('mallory', alices.id)).rejects.toMatchObject({ code: 'not_found' });
    await tamperWith(records, 'alice', alices.id, (e) => e, 'mallory');
    expect(await vault.getSecrets('mallory', 'openai')).toEqual([]);
    expect(await vault.list('mallory')).toMatchObject([{ id: alices.id, status: 'corrupt' }]);
    await tamperWith(records, 'alice', alices.id, (e) => ({ ...e, tag: flipFirstByte(e.tag) }));
    expect(await vault.getSecrets('alice', 'openai')).toEqual([]);
    expect(await vault.test('alice', alices.id, tester)).toBe('corrupt');
    expect(tester).not.toHaveBeenCalled();
  });

  it('refuses a label that is a key, writing nothing', async () => {
    const records = backend.records();
    const vault = vaultOn(records);
    const labelled = vault.add('bob', { provider: 'openai', apiKey: KEY_A, label: KEY_B });
    await expect(labelled).rejects.toMatchObject({ code: 'invalid_input' });
    await labelled.catch((e: Error) => expect(e.message).not.toContain(KEY_B));
    expect(await records.list('bob')).toEqual([]);
    expect(await records.users()).toEqual([]);
  });

  it('rotates the encryption key for every user (a hex user id too); again changes nothing; a record deleted meanwhile stays deleted', async () => {
    const records = backend.records();
    const oldKey = newKey();
    const nextKey = newKey();
    const before = vaultOn(records, oldKey);
    const a = await before.add('alice', { provider: 'openai', apiKey: KEY_A });
    await before.add(HEX_USER, { provider: 'anthropic', apiKey: KEY_B });
    const gone = await before.add('carol', { provider: 'openai', apiKey: KEY_A });
    await vaultOn(records, newKey()).add('dave', { provider: 'openai', apiKey: 'sk-test-dave-0123456789abcdefghij' }); // under a key nobody has
    const during = vaultOn(records, nextKey, oldKey);
    await during.remove('carol', gone.id);
    // The DocStore's index keeps a user whose last record went (carol); PostgreSQL walks the rows there are.
    const users = backend.name === 'docstore' ? 4 : 3;
    expect(await during.rotateEncryptionKey()).toEqual({ users, rotated: 2, alreadyCurrent: 0, failed: 1 });
    expect(await during.rotateEncryptionKey()).toEqual({ users, rotated: 0, alreadyCurrent: 2, failed: 1 });
    const after = vaultOn(records, nextKey);
    expect(await after.getSecrets('alice', 'openai')).toMatchObject([{ id: a.id, secret: KEY_A }]);
    expect(await after.getSecrets(HEX_USER, 'anthropic')).toMatchObject([{ secret: KEY_B }]);
    expect(await after.list('carol')).toEqual([]);
    const kids = (await records.list('alice')).map((r) => (r as { sealed: SealedEnvelope }).sealed.kid);
    expect(kids).toEqual([keyIdOf(nextKey)]);
  });
});

describe('user_api_keys in PostgreSQL (issue 23)', () => {
  it('holds no plaintext key anywhere in the database, only envelopes; the key id is queryable', async () => {
    const records = createPgByokRecords(db.pool);
    const encryptionKey = newKey();
    const vault = new ByokVault({ store: createMemoryDocStore(), records, encryptionKey });
    const keys = [KEY_A, KEY_B, 'AIzaTest-0123456789abcdefghijklmnopqrs', 'gsk_test0123456789abcdefABCDEF'];
    for (const [i, apiKey] of keys.entries()) {
      const added = await vault.add(`user-${i}`, { provider: (['openai', 'anthropic', 'google', 'groq'] as const)[i]!, apiKey, label: `key ${i}` });
      await vault.test(`user-${i}`, added.id, async () => 'valid');
    }
    const { rows } = await db.pool.query<{ row: string }>('SELECT row_to_json(k)::text AS row FROM user_api_keys k');
    const dump = rows.map((r) => r.row).join('\n');
    expect(rows).toHaveLength(keys.length);
    expect(dump).toContain('"kid"');
    for (const apiKey of keys) {
      expect(dump).not.toContain(apiKey);
      expect(dump).not.toContain(apiKey.slice(4, 20));
    }
    const byKid = await db.pool.query<{ key_id: string; n: number }>('SELECT key_id, count(*)::int AS n FROM user_api_keys GROUP BY key_id');
    expect(byKid.rows).toEqual([{ key_id: keyIdOf(encryptionKey), n: keys.length }]);
  });
});
