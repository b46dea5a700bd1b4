/**
 * The Redis key layout of the DocStore (issue 22, Redis Cluster). A DocStore key's first
 * segment is its area (`business`, `byok`, `usage`, ...), and the Redis key carries the area as
 * its hash tag: `business:settings` is `<prefix>:{business}:settings`. So every key of an area
 * lives on one cluster slot, and the DocStore's multi-key steps (transaction, applyOnce,
 * reserve) work on a cluster as long as they stay within one area, which every caller does:
 * BYOK's add (a user's records and the users index: `byok`), the business seed (`business`),
 * usage batches, holds and the mirror (`usage`). A step over two areas is refused, on a single
 * node too (one layout, one rule, tested without a cluster): DocStoreAreaError.
 *
 * The same layout on a single node and a cluster. It renamed the keys of earlier versions
 * (`<prefix>:business:settings` before): migrateDocStoreLayout moves them on first start.
 * Pub/sub channels are not keys and keep their names (`<prefix>:<channel>`).
 */

/** A DocStore step whose keys lie in more than one area (they could be on different cluster slots). */
export class DocStoreAreaError extends Error {
  override readonly name = 'DocStoreAreaError';
  constructor(operation: string, areas: readonly string[]) {
    super(`DocStore ${operation}: its keys span the areas ${areas.join(', ')}; one step may only touch keys of one area (one Redis Cluster slot, issue 22)`);
  }
}

/** The DocStore areas earlier versions wrote without a hash tag (what migrateDocStoreLayout renames). */
export const LEGACY_DOC_STORE_AREAS = ['business', 'byok', 'usage'] as const;

/** The area of a DocStore key: its first `:`-separated segment. */
export function docStoreArea(key: string): string {
  const colon = key.indexOf(':');
  return colon === -1 ? key : key.slice(0, colon);
}

/** The Redis key of a DocStore key: `<prefix>:{<area>}<the rest from its first ':'>`. */
export function docStoreRedisKey(prefix: string, key: string): string {
  const colon = key.indexOf(':');
  return colon === -1 ? `${prefix}:{${key}}` : `${prefix}:{${key.slice(0, colon)}}${key.slice(colon)}`;
}

/** The DocStore key of a Redis key docStoreRedisKey made (null for any other key). */
export function docStoreKeyOf(prefix: string, redisKey: string): string | null {
  const head = `${prefix}:{`;
  if (!redisKey.startsWith(head)) return null;
  const close = redisKey.indexOf('}', head.length);
  if (close === -1) return null;
  return redisKey.slice(head.length, close) + redisKey.slice(close + 1);
}

/** A SCAN pattern for the Redis keys of the DocStore keys that begin with `keyPrefix`. */
export function docStoreScanPattern(prefix: string, keyPrefix: string): string {
  const escape = (s: string) => s.replace(/[*?[\]\\]/g, (ch) => `\\${ch}`);
  const colon = keyPrefix.indexOf(':');
  // Without a ':' the prefix is (the start of) an area name: `us` matches `{usage}` and `{usage}:...`.
  if (colon === -1) return `${escape(`${prefix}:{${keyPrefix}`)}*`;
  return `${escape(docStoreRedisKey(prefix, keyPrefix))}*`;
}

/** Throws DocStoreAreaError unless every key is of one area. */
export function assertOneArea(operation: string, keys: readonly string[]): void {
  if (keys.length < 2) return;
  const first = docStoreArea(keys[0]!);
  for (let i = 1; i < keys.length; i += 1) {
    const area = docStoreArea(keys[i]!);
    if (area !== first) throw new DocStoreAreaError(operation, [...new Set(keys.map(docStoreArea))]);
  }
}
