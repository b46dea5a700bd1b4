import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { ByokError } from '../../server/byok/ByokError';
import { ByokVault, type ByokKeyTester } from '../../server/byok/ByokVault';
import { keyIdOf } from '../../server/byok/Keyring';
import type { DocStore } from '../../server/store/DocStore';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { Sealed, type SealedEnvelope } from '../../server/store/Sealed';

const KEY_A = 'sk-test-alice-0123456789abcdefghijklmnop';
const KEY_B = 'sk-test-ant-bob-0123456789abcdefghijklm';
const newKey = () => randomBytes(32);
const vaultOn = (store: DocStore, encryptionKey = newKey(), previousEncryptionKey: Buffer | null = null) =>
  new ByokVault({ store, encryptionKey, previousEncryptionKey });

/** Writes a modified copy of a stored record: what an attacker with store access could do. */
async function tamperWith(store: DocStore, userId: string, id: string, change: (e: SealedEnvelope) => SealedEnvelope, asUser = userId) {
  const record = (await store.mapGet(`byok:keys:${userId}`, id)) as { sealed: SealedEnvelope };
  await store.mapSet(`byok:keys:${asUser}`, id, { ...record, sealed: new Sealed(change(record.sealed)) });
}
const flipFirstByte = (b64: string) => {
  const bytes = Buffer.from(b64, 'base64');
  bytes[0] = bytes[0]! ^ 1;
  return bytes.toString('base64');
};

const redisClients: Redis[] = [];
afterAll(async () => {
  await Promise.all(redisClients.map((r) => r.quit()));
});

describe('ByokVault', () => {
  it('round-trips a key: add, list masked, use, remove', async () => {
    const vault = vaultOn(createMemoryDocStore());
    const added = await vault.add('alice', { provider: 'openai', apiKey: KEY_A, label: 'work' });
    expect(added).toMatchObject({ provider: 'openai', label: 'work', mask: 'sk-…mnop', lastTest: null });
    expect(added.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.stringify(added)).not.toContain(KEY_A);
    expect(await vault.list('alice')).toEqual([{ ...added, status: 'ok' }]);
    expect(await vault.getSecrets('alice', 'openai')).toEqual([{ id: added.id, provider: 'openai', label: 'work', mask: 'sk-…mnop', secret: KEY_A }]);
    expect(await vault.getSecrets('alice', 'anthropic')).toEqual([]);
    await vault.remove('alice', added.id);
    expect(await vault.list('alice')).toEqual([]);
    await expect(vault.remove('alice', added.id)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('validates input, refuses duplicates, and refuses a label that is a key', async () => {
    const vault = vaultOn(createMemoryDocStore());
    await expect(vault.add('alice', { provider: 'openai', apiKey: 'short' })).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(vault.add('alice', { provider: 'openai', apiKey: 'has white space in it' })).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(vault.add('alice', { provider: 'acme', apiKey: KEY_A })).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(vault.add('alice', { provider: 'openai', apiKey: KEY_A, label: 'x'.repeat(61) })).rejects.toMatchObject({ code: 'invalid_input' });
    const labelled = vault.add('alice', { provider: 'openai', apiKey: KEY_A, label: KEY_B });
    await expect(labelled).rejects.toMatchObject({ code: 'invalid_input' });
    await labelled.catch((e: Error) => expect(e.message).not.toContain(KEY_B));
    await vault.add('alice', { provider: 'openai', apiKey: KEY_A });
    await expect(vault.add('alice', { provider: 'openai', apiKey: KEY_A })).rejects.toMatchObject({ code: 'duplicate' });
  });

  it('never lets one user read, test, use or remove another user’s key', async () => {
    const vault = vaultOn(createMemoryDocStore());
    const alices = await vault.add('alice', { provider: 'openai', apiKey: KEY_A });
    const tester = vi.fn<ByokKeyTester>(async () => 'valid');
    expect(await vault.list('mallory')).toEqual([]);
    expect(await vault.getSecrets('mallory', 'openai')).toEqual([]);
    await expect(vault.test('mallory', alices.id, tester)).rejects.toMatchObject({ code: 'not_found' });
    await expect(vault.remove('mallory', alices.id)).rejects.toMatchObject({ code: 'not_found' });
    await expect(vault.test('mallory', 'not-a-uuid', tester)).rejects.toBeInstanceOf(ByokError);
    expect(tester).not.toHaveBeenCalled();
    expect(await vault.getSecrets('alice', 'openai')).toHaveLength(1);
  });

  it('binds each ciphertext to its owner and record: a copy into another user’s record does not open', async () => {
    const store = createMemoryDocStore();
    const vault = vaultOn(store);
    const alices = await vault.add('alice', { provider: 'openai', apiKey: KEY_A });
    // Mallory (with store access) copies Alice's record, envelope and all, into her own map.
    await tamperWith(store, 'alice', alices.id, (e) => e, 'mallory');
    expect(await vault.getSecrets('mallory', 'openai')).toEqual([]);
    expect(await vault.list('mallory')).toMatchObject([{ id: alices.id, status: 'corrupt' }]);
    const tester = vi.fn<ByokKeyTester>(async () => 'valid');
    expect(await vault.test('mallory', alices.id, tester)).toBe('corrupt');
    expect(tester).not.toHaveBeenCalled();
  });

  it('detects a tampered ciphertext, tag or IV, reports it corrupt and never uses it', async () => {
    for (const field of ['ct', 'tag', 'iv'] as const) {
      const store = createMemoryDocStore();
      const vault = vaultOn(store);
      const added = await vault.add('alice', { provider: 'openai', apiKey: KEY_A });
      await tamperWith(store, 'alice', added.id, (e) => ({ ...e, [field]: flipFirstByte(e[field]) }));
      expect(await vault.getSecrets('alice', 'openai'), field).toEqual([]);
      expect((await vault.list('alice'))[0]?.status, field).toBe('corrupt');
      const tester = vi.fn<ByokKeyTester>(async () => 'valid');
      expect(await vault.test('alice', added.id, tester)).toBe('corrupt');
      expect(tester).not.toHaveBeenCalled();
      expect((await vault.list('alice'))[0]?.lastTest?.result).toBe('corrupt');
    }
  });

  it('tests a key through the injected tester and remembers the result', async () => {
    const vault = new ByokVault({ store: createMemoryDocStore(), encryptionKey: newKey(), clock: () => Date.UTC(2025, 0, 2) });
    const added = await vault.add('alice', { provider: 'anthropic', apiKey: KEY_B });
    const tester = vi.fn<ByokKeyTester>(async () => 'rejected');
    expect(await vault.test('alice', added.id, tester)).toBe('rejected');
    expect(tester).toHaveBeenCalledWith('anthropic', KEY_B);
    expect((await vault.list('alice'))[0]?.lastTest).toEqual({ result: 'rejected', at: '2025-01-02T00:00:00.000Z' });
    expect(await vault.getSecrets('alice', 'anthropic')).toHaveLength(1); // still usable after a test write
  });

  it('keeps fallbackToSharedPool per user, default true', async () => {
    const vault = vaultOn(createMemoryDocStore());
    expect(await vault.getSettings('alice')).toEqual({ fallbackToSharedPool: true });
    await vault.setSettings('alice', { fallbackToSharedPool: false });
    expect(await vault.getSettings('alice')).toEqual({ fallbackToSharedPool: false });
    expect(await vault.getSettings('bob')).toEqual({ fallbackToSharedPool: true });
    await expect(vault.setSettings('alice', { fallbackToSharedPool: 'no' })).rejects.toMatchObject({ code: 'invalid_input' });
  });

  it('rotates the encryption key: old records stay readable throughout, then all are under the new key id', async () => {
    const store = createMemoryDocStore();
    const oldKey = newKey();
    const nextKey = newKey();
    const before = vaultOn(store, oldKey);
    const a = await before.add('alice', { provider: 'openai', apiKey: KEY_A });
    await before.add('bob', { provider: 'anthropic', apiKey: KEY_B });

    // Deployed with ENCRYPTION_KEY=new, ENCRYPTION_KEY_PREVIOUS=old: old records still open.
    const during = vaultOn(store, nextKey, oldKey);
    expect(await during.getSecrets('alice', 'openai')).toMatchObject([{ secret: KEY_A }]);
    const c = await during.add('carol', { provider: 'google', apiKey: 'sk-test-google-carol-0123456789abcdefghijklmnop' });
    expect(await during.rotateEncryptionKey()).toEqual({ users: 3, rotated: 2, alreadyCurrent: 1, failed: 0 });
    expect(await during.rotateEncryptionKey()).toEqual({ users: 3, rotated: 0, alreadyCurrent: 3, failed: 0 });
    const kids = store.dump().flatMap((line) => [...line.matchAll(/"kid":"([0-9a-f]{8})"/g)].map((m) => m[1]));
    expect(new Set(kids)).toEqual(new Set([keyIdOf(nextKey)]));

    // ENCRYPTION_KEY_PREVIOUS removed: everything opens with the new key alone, ids and metadata unchanged.
    const after = vaultOn(store, nextKey);
    expect(await after.getSecrets('alice', 'openai')).toMatchObject([{ id: a.id, secret: KEY_A }]);
    expect(await after.getSecrets('bob', 'anthropic')).toMatchObject([{ secret: KEY_B }]);
    expect((await after.list('carol'))[0]).toMatchObject({ id: c.id, status: 'ok' });
    // And a gateway that only has the old key cannot read rotated records: they are reported, not used.
    expect(await vaultOn(store, oldKey).getSecrets('alice', 'openai')).toEqual([]);
  });

  it('rotation leaves a record deleted mid-rotation deleted, and skips records it cannot open', async () => {
    const store = createMemoryDocStore();
    const oldKey = newKey();
    const v1 = vaultOn(store, oldKey);
    const added = await v1.add('alice', { provider: 'openai', apiKey: KEY_A });
    await v1.add('bob', { provider: 'openai', apiKey: KEY_B });
    // A record under a key nobody has any more.
    await vaultOn(store, newKey()).add('dave', { provider: 'openai', apiKey: 'sk-test-dave-0123456789abcdefghij' });
    const v2 = vaultOn(store, newKey(), oldKey);
    await v2.remove('alice', added.id);
    expect(await v2.rotateEncryptionKey()).toEqual({ users: 3, rotated: 1, alreadyCurrent: 0, failed: 1 });
    expect(await v2.list('alice')).toEqual([]);
  });

  it('without an encryption key BYOK is off: nothing is sealed or opened, the shared pools serve', async () => {
    const store = createMemoryDocStore();
    const earlier = await vaultOn(store).add('alice', { provider: 'openai', apiKey: KEY_A });
    const off = new ByokVault({ store, encryptionKey: null });
    const refused = (promise: Promise<unknown>) => promise.then(() => null, (error: unknown) => (ByokError.isInstance(error) ? error.code : error));
    expect(await refused(off.add('alice', { provider: 'openai', apiKey: KEY_B }))).toBe('not_configured');
    expect(await refused(off.test('alice', earlier.id, async () => 'valid'))).toBe('not_configured');
    expect(await refused(off.rotateEncryptionKey())).toBe('not_configured');
    // A record from a time with a key is listed (it cannot be opened here) and never used.
    expect((await off.list('alice')).map((k) => [k.id, k.status])).toEqual([[earlier.id, 'corrupt']]);
    expect(await off.getSecrets('alice', 'openai')).toEqual([]);
    expect(await off.routing('alice')).toEqual({ providers: new Set(), fallbackToSharedPool: true });
    // What needs no key still works.
    expect(await off.setSettings('alice', { fallbackToSharedPool: false })).toEqual({ fallbackToSharedPool: false });
    await off.remove('alice', earlier.id);
    expect(await off.list('alice')).toEqual([]);
  });

  it('writes no plaintext key to the store (memory and Redis dumps scanned)', async () => {
    const memory = createMemoryDocStore();
    const redis = new Redis(inject('redisUrl'));
    redisClients.push(redis);
    const prefix = `test-byok-${randomUUID()}`;
    const shared = createRedisDocStore({ redis, prefix });
    const keys = [KEY_A, KEY_B, 'AIzaTest-0123456789abcdefghijklmnopqrs', 'gsk_test0123456789abcdefABCDEF'];
    for (const store of [memory, shared]) {
      const vault = vaultOn(store);
      for (const [i, apiKey] of keys.entries()) {
        const added = await vault.add(`user-${i}`, { provider: (['openai', 'anthropic', 'google', 'groq'] as const)[i]!, apiKey, label: `key ${i}` });
        await vault.test(`user-${i}`, added.id, async () => 'valid');
      }
      await vault.rotateEncryptionKey();
    }
    const dumps = [memory.dump().join('\n')];
    let redisDump = '';
    for (const key of await redis.keys(`${prefix}:*`)) {
      const type = await redis.type(key);
      redisDump += key + '\n' + (type === 'hash' ? JSON.stringify(await redis.hgetall(key)) : String(await redis.get(key))) + '\n';
    }
    dumps.push(redisDump);
    for (const dump of dumps) {
      expect(dump).toContain('kid'); // the envelopes are there...
      for (const apiKey of keys) {
        expect(dump).not.toContain(apiKey);
        expect(dump).not.toContain(apiKey.slice(4, 20)); // nor a recognisable piece of it
      }
    }
  });
});

describe('issue 24.10: BYOK for a user whose id looks like a secret, and all-or-nothing writes', () => {
  const HEX_USERS = ['a94a8fe5ccb19ba61c4c0873d391e987982fbbd3', '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'];
  const stores: [string, () => DocStore][] = [
    ['memory', () => createMemoryDocStore()],
    [
      'redis',
      () => {
        const redis = new Redis(inject('redisUrl'));
        redisClients.push(redis);
        return createRedisDocStore({ redis, prefix: `test-byok-hexid-${randomUUID()}` });
      },
    ],
  ];

  it.each(stores)('issue 24.10: a 40- or 64-hex user adds a key, and the rotation re-seals it (%s)', async (_name, make) => {
    const store = make();
    const oldKey = newKey();
    const nextKey = newKey();
    const before = vaultOn(store, oldKey);
    for (const userId of HEX_USERS) {
      const added = await before.add(userId, { provider: 'openai', apiKey: KEY_A, label: 'work' });
      expect(await before.list(userId)).toEqual([{ ...added, status: 'ok' }]);
    }
    const during = vaultOn(store, nextKey, oldKey);
    expect(await during.rotateEncryptionKey()).toEqual({ users: 2, rotated: 2, alreadyCurrent: 0, failed: 0 });
    for (const userId of HEX_USERS) expect(await vaultOn(store, nextKey).getSecrets(userId, 'openai')).toMatchObject([{ secret: KEY_A }]);
  });

  it.each(stores)('issue 24.10: a byok.add whose index write fails leaves no record behind (%s)', async (_name, make) => {
    const inner = make();
    // The store refuses any write that touches the rotation index, as a connection lost after the record was written would.
    const refusesIndex = (key: string) => key === 'byok:users';
    const store: DocStore = {
      ...inner,
      mapSet: (key, field, value) => (refusesIndex(key) ? Promise.reject(new Error('connection lost')) : inner.mapSet(key, field, value)),
      transaction: (writes, options) => (writes.some((w) => refusesIndex(w.key)) ? Promise.reject(new Error('connection lost')) : inner.transaction(writes, options)),
    };
    const vault = vaultOn(store);
    await expect(vault.add('alice', { provider: 'openai', apiKey: KEY_A })).rejects.toThrow('connection lost');
    expect(await vault.list('alice')).toEqual([]);
    expect(await inner.mapSize('byok:keys:alice')).toBe(0);
    // A label the guard refuses: neither the record nor the index entry is written.
    await expect(vaultOn(inner).add('bob', { provider: 'openai', apiKey: KEY_A, label: KEY_B })).rejects.toMatchObject({ code: 'invalid_input' });
    expect(await inner.mapSize('byok:keys:bob')).toBe(0);
    expect(await inner.mapSize('byok:users')).toBe(0);
  });

  it.each(stores)('issue 24.10: the rotation finds and indexes records an earlier version left outside the index (%s)', async (_name, make) => {
    const store = make();
    const oldKey = newKey();
    const nextKey = newKey();
    const [userId] = HEX_USERS as [string];
    await vaultOn(store, oldKey).add(userId, { provider: 'openai', apiKey: KEY_A });
    // What the earlier version left: the record stored, its index entry refused.
    for (const field of (await store.mapGetAll('byok:users')).keys()) await store.mapDelete('byok:users', field);
    expect(await vaultOn(store, nextKey, oldKey).rotateEncryptionKey()).toEqual({ users: 1, rotated: 1, alreadyCurrent: 0, failed: 0 });
    expect(await vaultOn(store, nextKey).getSecrets(userId, 'openai')).toMatchObject([{ secret: KEY_A }]);
    expect(await store.mapSize('byok:users')).toBe(1);
  });
});
