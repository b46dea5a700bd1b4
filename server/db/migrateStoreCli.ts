import { connectRedis } from '../ops/redisClient';
import { BUSINESS_CHANNEL } from '../business/BusinessConfig';
import { BYOK_CHANNEL } from '../byok/ByokVault';
import { loadEnvironmentOrExit } from '../config/loadEnvironment';
import { silentLogger } from '../observability/logger';
import { EVERY_ENTRY } from '../store/NotifiedCache';
import { createRedisDocStore } from '../store/redisDocStore';
import { copyUsageFromDocStore } from '../usage/copyUsageFromDocStore';
import { describeMigration, migrateStore } from './migrateStore';
import { openDatabaseOfRecord } from './openDatabaseOfRecord';

/**
 * `npm run migrate-store`: copies the business data of a Redis-held store (REDIS_URL,
 * REDIS_PREFIX) into PostgreSQL (DATABASE_URL), applying the schema migrations first.
 *
 * Procedure: run it once with the gateways' REDIS_URL, REDIS_PREFIX and DATABASE_URL, then
 * restart the gateways with DATABASE_URL set (they then read and write PostgreSQL). Running it
 * again is safe: identical rows are left alone (it prints "0 written"), so it can be re-run just
 * before the switch to pick up what changed meanwhile. Redis is only read; it prints counts,
 * never a value or a URL's password. The usage ledger (day counters, limits) is copied too.
 */

async function main(): Promise<number> {
  // It serves no request and verifies no token: JWT_SECRET need not be given.
  const { env } = loadEnvironmentOrExit(2, { requireJwtSecret: false });
  if (!env.redisUrl || !env.databaseUrl) {
    console.error('migrate-store copies the store in Redis (REDIS_URL, REDIS_PREFIX) into PostgreSQL (DATABASE_URL): set both.');
    return 2;
  }
  const redis = connectRedis(env.redisUrl, { maxRetriesPerRequest: 3, cluster: env.redisCluster });
  redis.on('error', () => {}); // failures surface as rejected commands below
  const store = createRedisDocStore({ redis, prefix: env.redisPrefix });
  try {
    const database = await openDatabaseOfRecord(env.databaseUrl, { logger: silentLogger, max: 2 });
    try {
      const report = await migrateStore(store, database.pool);
      console.log(`Copied the store under REDIS_PREFIX ${env.redisPrefix} into PostgreSQL:`);
      for (const line of describeMigration(report)) console.log(`  ${line}`);
      // The usage ledger after the rest: one transaction per day, each a batch with its own id,
      // so a second run (or a run cut short and started again) counts no day twice.
      const usage = await copyUsageFromDocStore(store, database.pool);
      console.log(`  usage: ${usage.days} days copied (${usage.rows} user-days), ${usage.skippedDays} already copied; limits of ${usage.limits} users`);
      // Gateways already on PostgreSQL drop their cached catalog and BYOK routing (best effort).
      await store.publish(BUSINESS_CHANNEL, 'changed').catch(() => {});
      await store.publish(BYOK_CHANNEL, EVERY_ENTRY).catch(() => {});
      return 0;
    } finally {
      await database.close();
    }
  } finally {
    await store.close().catch(() => {});
    await redis.quit().catch(() => redis.disconnect());
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('migrate-store failed:', error instanceof Error ? error.message : 'unknown error');
    process.exit(1);
  },
);
