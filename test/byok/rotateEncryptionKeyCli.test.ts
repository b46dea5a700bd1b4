import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ByokVault } from '../../server/byok/ByokVault';
import { keyIdOf } from '../../server/byok/Keyring';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { runCli as runCliScript } from '../support/runCli';
import { docStoreRedisKey } from '../../server/store/docStoreKeys';

const runCli = (env: Record<string, string>) => runCliScript('server/byok/rotateEncryptionKeyCli.ts', env);

const redis = new Redis(inject('redisUrl'));
afterAll(async () => {
  await redis.quit();
});

describe('rotate-encryption-key CLI', () => {
  it('says REDIS_URL is required when it is missing', async () => {
    const { code, out } = await runCli({ ENCRYPTION_KEY: randomBytes(32).toString('hex') });
    expect(code).toBe(2);
    expect(out).toContain('REDIS_URL is not set');
  });

  it('re-encrypts every record in Redis under the new key, printing no key', async () => {
    const prefix = `test-rotate-${randomUUID().slice(0, 8)}`;
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const store = createRedisDocStore({ redis, prefix });
    await new ByokVault({ store, encryptionKey: oldKey }).add('alice', { provider: 'openai', apiKey: 'sk-test-alice-0123456789abcdef' });
    const { code, out } = await runCli({
      REDIS_URL: inject('redisUrl'),
      REDIS_PREFIX: prefix,
      ENCRYPTION_KEY: newKey.toString('hex'),
      ENCRYPTION_KEY_PREVIOUS: oldKey.toString('base64'),
    });
    expect(out).toContain('1 rotated');
    expect(code).toBe(0);
    expect(out).not.toContain(newKey.toString('hex'));
    expect(out).not.toContain('sk-test-alice');
    const onlyNew = new ByokVault({ store, encryptionKey: newKey });
    expect(await onlyNew.getSecrets('alice', 'openai')).toMatchObject([{ secret: 'sk-test-alice-0123456789abcdef' }]);
    expect(JSON.stringify(await redis.hgetall(docStoreRedisKey(prefix, 'byok:keys:alice')))).toContain(keyIdOf(newKey));
  });

  it('issue 24.10: re-encrypts the keys of users whose ids are 40 and 64 hex characters', async () => {
    const prefix = `test-rotate-${randomUUID().slice(0, 8)}`;
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const store = createRedisDocStore({ redis, prefix });
    const users = ['a94a8fe5ccb19ba61c4c0873d391e987982fbbd3', '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'];
    for (const userId of users) await new ByokVault({ store, encryptionKey: oldKey }).add(userId, { provider: 'openai', apiKey: 'sk-test-hexuser-0123456789abcdef' });
    const { code, out } = await runCli({
      REDIS_URL: inject('redisUrl'),
      REDIS_PREFIX: prefix,
      ENCRYPTION_KEY: newKey.toString('hex'),
      ENCRYPTION_KEY_PREVIOUS: oldKey.toString('hex'),
    });
    expect(out).toContain('2 rotated');
    expect(code).toBe(0);
    for (const userId of users) {
      expect(await new ByokVault({ store, encryptionKey: newKey }).getSecrets(userId, 'openai')).toMatchObject([{ secret: 'sk-test-hexuser-0123456789abcdef' }]);
    }
  });
});
