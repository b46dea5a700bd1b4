import { connectRedis } from '../ops/redisClient';
import { loadEnvironmentOrExit } from '../config/loadEnvironment';
import { openDatabaseOfRecord, type DatabaseOfRecord } from '../db/openDatabaseOfRecord';
import { silentLogger } from '../observability/logger';
import { createMemoryDocStore } from '../store/memoryDocStore';
import { createRedisDocStore } from '../store/redisDocStore';
import { ByokVault } from './ByokVault';

/**
 * `npm run rotate-encryption-key`: re-seals every stored BYOK key under ENCRYPTION_KEY.
 *
 * Procedure, with no downtime:
 *  1. Deploy every instance with ENCRYPTION_KEY=<new> and ENCRYPTION_KEY_PREVIOUS=<old>
 *     (both keys open records; new records are sealed under the new one).
 *  2. Run this once, against the same REDIS_URL / REDIS_PREFIX, or DATABASE_URL when the
 *     records live in PostgreSQL (then REDIS_URL, when set, only carries the change notice).
 *  3. When it reports `failed: 0`, remove ENCRYPTION_KEY_PREVIOUS and redeploy.
 * It is safe to run again: records already under the new key are left alone.
 */
async function main(): Promise<number> {
  // It opens and re-seals records only: no token is verified, so JWT_SECRET need not be given.
  const { env } = loadEnvironmentOrExit(2, { requireJwtSecret: false });
  if (!env.redisUrl && !env.databaseUrl) {
    console.error('REDIS_URL is not set, nor DATABASE_URL. Without either, BYOK keys live only in the gateway process (in-memory store) and vanish on restart, so there is nothing to rotate. Set DATABASE_URL or REDIS_URL to what your gateways use.');
    return 2;
  }
  if (!env.encryptionKey) {
    console.error('ENCRYPTION_KEY is not set: set it to the new key (64 hex characters or base64 of 32 bytes), and ENCRYPTION_KEY_PREVIOUS to the old one.');
    return 2;
  }
  if (!env.encryptionKeyPrevious) console.warn('ENCRYPTION_KEY_PREVIOUS is not set: records sealed under any other key will be reported as failed and left untouched.');

  const redis = env.redisUrl ? connectRedis(env.redisUrl, { maxRetriesPerRequest: 3, cluster: env.redisCluster }) : null;
  redis?.on('error', () => {}); // failures surface as rejected commands below
  let database: DatabaseOfRecord | null = null;
  try {
    // With DATABASE_URL the records are in PostgreSQL; Redis (when set) tells the gateways to re-read.
    database = env.databaseUrl ? await openDatabaseOfRecord(env.databaseUrl, { logger: silentLogger, max: 2 }) : null;
    const store = redis ? createRedisDocStore({ redis, prefix: env.redisPrefix }) : createMemoryDocStore();
    const vault = new ByokVault({ store, ...(database ? { records: database.byok } : {}), encryptionKey: env.encryptionKey, previousEncryptionKey: env.encryptionKeyPrevious });
    const report = await vault.rotateEncryptionKey();
    console.log(`Re-encrypted BYOK keys under key id ${vault.currentKeyId}: ${report.rotated} rotated, ${report.alreadyCurrent} already current, ${report.failed} failed, across ${report.users} users.`);
    if (report.failed > 0) {
      console.error('Some records could not be opened (corrupt, or sealed under a key that is neither ENCRYPTION_KEY nor ENCRYPTION_KEY_PREVIOUS). Keep ENCRYPTION_KEY_PREVIOUS until resolved.');
      return 1;
    }
    return 0;
  } finally {
    await database?.close();
    await redis?.quit().catch(() => redis.disconnect());
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('rotate-encryption-key failed:', error instanceof Error ? error.message : 'unknown error');
    process.exit(1);
  },
);
