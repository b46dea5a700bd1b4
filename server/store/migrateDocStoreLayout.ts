import type { Logger } from '../observability/logger';
import { isClusterClient, scanKeys, type RedisClient } from '../ops/redisClient';
import { docStoreRedisKey, LEGACY_DOC_STORE_AREAS } from './docStoreKeys';

/** Present once this prefix's keys are in the hash-tagged layout (docStoreKeys.ts). */
export const LAYOUT_MARKER_KEY = 'docstore:layout';
const LAYOUT_VERSION = '2';

export interface LayoutMigration {
  /** Keys renamed into the tagged layout. */
  renamed: number;
  /** Old keys left where they were because their new name was already taken (logged). */
  conflicts: number;
  /** False when the marker said it was done already (nothing was scanned). */
  scanned: boolean;
}

/**
 * Issue 22: moves the DocStore keys earlier versions wrote (`<prefix>:business:settings`,
 * `<prefix>:byok:keys:<user>`, `<prefix>:usage:day:<date>`, ...) to their hash-tagged names
 * (`<prefix>:{business}:settings`, ...), TTLs kept, once per prefix: a marker key records that
 * it ran, so later starts cost one GET. Every Redis DocStore runs it before its first command
 * (the gateway, `npm run migrate-store`, `npm run rotate-encryption-key`), so nothing reads or
 * writes the new names before the old data is there. Instances starting together may both run
 * it: a rename is atomic (RENAMENX) and a key already moved is skipped. An old key whose new
 * name exists (an old instance still writing after a new one started) is left in place and
 * counted: stop every old instance before starting new ones (README "Operations").
 */
export async function migrateDocStoreLayout(redis: RedisClient, prefix: string, logger?: Logger): Promise<LayoutMigration> {
  const marker = docStoreRedisKey(prefix, LAYOUT_MARKER_KEY);
  if ((await redis.get(marker)) === LAYOUT_VERSION) return { renamed: 0, conflicts: 0, scanned: false };
  const legacy = new RegExp(`^${escapeRegExp(prefix)}:(?:${LEGACY_DOC_STORE_AREAS.join('|')})(?::|$)`);
  let renamed = 0;
  let conflicts = 0;
  const escapedPrefix = prefix.replace(/[*?[\]\\]/g, (ch) => `\\${ch}`);
  for await (const batch of scanKeys(redis, `${escapedPrefix}:*`)) {
    for (const oldKey of batch) {
      if (!legacy.test(oldKey)) continue;
      const newKey = docStoreRedisKey(prefix, oldKey.slice(prefix.length + 1));
      const moved = await moveKey(redis, oldKey, newKey);
      if (moved === 'moved') renamed += 1;
      else if (moved === 'taken') conflicts += 1;
    }
  }
  if (renamed > 0) logger?.warn({ renamed }, 'store keys moved to the hash-tagged layout (issue 22: Redis Cluster support); a one-off step');
  if (conflicts > 0) logger?.error({ conflicts }, 'store keys of an earlier version were left in place: their new names were taken (an old instance still running?)');
  await redis.set(marker, LAYOUT_VERSION);
  return { renamed, conflicts, scanned: true };
}

async function moveKey(redis: RedisClient, from: string, to: string): Promise<'moved' | 'taken' | 'gone'> {
  if (!isClusterClient(redis)) {
    try {
      return (await redis.renamenx(from, to)) === 1 ? 'moved' : 'taken';
    } catch (error) {
      // Moved meanwhile by another instance starting at the same time.
      if (error instanceof Error && /no such key/i.test(error.message)) return 'gone';
      throw error;
    }
  }
  // A cluster keeps the two names on different slots: copy (DUMP/RESTORE keeps the TTL), then delete.
  const [dump, ttl] = await Promise.all([redis.dumpBuffer(from), redis.pttl(from)]);
  if (dump === null) return 'gone';
  try {
    await redis.restore(to, ttl > 0 ? ttl : 0, dump);
  } catch (error) {
    if (error instanceof Error && /BUSYKEY/.test(error.message)) return (await movedByAnother(redis, from, to, dump)) ? 'gone' : 'taken';
    throw error;
  }
  await redis.del(from);
  return 'moved';
}

/**
 * The new name was taken on a cluster: by another instance moving this same key right now (it
 * restored the same value and deletes the old name, or has), or by a value of its own (a
 * conflict). Without RENAMENX's atomicity the two look alike at first; the old name gone, or the
 * new one holding exactly what was copied, is the other instance's move (the old name is then
 * deleted here too, as that instance does).
 */
async function movedByAnother(redis: RedisClient, from: string, to: string, dump: Buffer): Promise<boolean> {
  const [stillThere, there] = await Promise.all([redis.exists(from), redis.dumpBuffer(to)]);
  if (stillThere === 0) return true;
  if (there === null || !there.equals(dump)) return false;
  await redis.del(from);
  return true;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
