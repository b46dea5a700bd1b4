import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { BUSINESS_SETTING_KEYS, modelEntrySchema } from '../../shared/business';
import { DEFAULT_BUSINESS_CONFIG } from '../../server/business/BusinessConfig';
import { createLogger } from '../../server/observability/logger';
import { connectRedis, type RedisClient } from '../../server/ops/redisClient';
import { docStoreRedisKey } from '../../server/store/docStoreKeys';
import { LAYOUT_MARKER_KEY, migrateDocStoreLayout } from '../../server/store/migrateDocStoreLayout';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { startTestGateway } from '../support/gatewayHarness';
import { forEachRedisTopology, type RedisTopology } from '../support/redisTopologies';

/**
 * Issue 22: the one-off move of the DocStore's keys from the untagged layout of earlier versions
 * (`<prefix>:business:settings`) to the hash-tagged one (`<prefix>:{business}:settings`). Old
 * keys are written by hand into a fresh prefix, as an earlier version left them; the migration
 * runs directly, through a Redis DocStore's first command, and through a gateway's start.
 */

/** What an earlier version wrote: DocStore key -> a value of each kind the areas use. */
type Value = { string: string } | { hash: Record<string, string> } | { zset: [number, string][] };

const ALICE_RECORD = JSON.stringify({ id: 'k1', provider: 'openai', label: 'mine', mask: 'sk-…abcd', sealed: { v: 1, iv: 'aXY=', tag: 'dGFn', data: 'ZGF0YQ==' } });

const OLD_SETTINGS = { prompt_soft_limit: '1234', prompt_hard_limit: '4321' };
const OLD: Record<string, Value> = {
  'business:seeded': { string: JSON.stringify({ at: '2026-01-01T00:00:00.000Z' }) },
  'business:settings': { hash: OLD_SETTINGS },
  'business:models': { hash: { 'gpt-4o': JSON.stringify({ id: 'gpt-4o', provider: 'openai' }) } },
  'byok:users': { hash: { alice: '1' } },
  'byok:keys:alice': { hash: { k1: ALICE_RECORD } },
  'byok:settings:alice': { string: JSON.stringify({ fallbackToSharedPool: false }) },
  'usage:limits': { hash: { alice: JSON.stringify({ rpm: 7 }) } },
  'usage:day:2026-01-01': { hash: { 'alice|requests': '3', 'alice|inputTokens': '42' } },
  'usage:rpm:alice': { zset: [[1_000, 'a'], [2_000, 'b']] },
};
/** Keys with a TTL, and the TTL it had (ms). */
const TTLS: Record<string, number> = { 'usage:day:2026-01-01': 600_000, 'usage:rpm:alice': 300_000 };

async function writeOld(redis: RedisClient, prefix: string, keys: Record<string, Value> = OLD): Promise<void> {
  for (const [key, value] of Object.entries(keys)) {
    const redisKey = `${prefix}:${key}`;
    if ('string' in value) await redis.set(redisKey, value.string);
    else if ('hash' in value) await redis.hset(redisKey, value.hash);
    else for (const [score, member] of value.zset) await redis.zadd(redisKey, score, member);
    if (TTLS[key]) await redis.pexpire(redisKey, TTLS[key]!);
  }
}

async function read(redis: RedisClient, redisKey: string): Promise<Value | null> {
  const type = await redis.type(redisKey);
  if (type === 'string') return { string: (await redis.get(redisKey))! };
  if (type === 'hash') return { hash: await redis.hgetall(redisKey) };
  if (type === 'zset') {
    const flat = await redis.zrange(redisKey, 0, -1, 'WITHSCORES');
    const pairs: [number, string][] = [];
    for (let i = 0; i < flat.length; i += 2) pairs.push([Number(flat[i + 1]), flat[i]!]);
    return { zset: pairs };
  }
  return null;
}

/** Every key of the old layout is gone; its new name holds the same value, its TTL kept. */
async function expectMigrated(redis: RedisClient, prefix: string): Promise<void> {
  for (const [key, value] of Object.entries(OLD)) {
    expect(await redis.exists(`${prefix}:${key}`), `${key} (old name)`).toBe(0);
    const newKey = docStoreRedisKey(prefix, key);
    expect(await read(redis, newKey), key).toEqual(value);
    const ttl = await redis.pttl(newKey);
    if (TTLS[key]) {
      expect(ttl, `${key} TTL`).toBeGreaterThan(TTLS[key]! - 60_000);
      expect(ttl, `${key} TTL`).toBeLessThanOrEqual(TTLS[key]!);
    } else expect(ttl, `${key} TTL`).toBe(-1);
  }
}

const clients: RedisClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.quit()));
});
function connect(topology: RedisTopology): RedisClient {
  const redis = topology.connect();
  clients.push(redis);
  return redis;
}

const OLD_COUNT = Object.keys(OLD).length;

forEachRedisTopology((topology) => {
  describe('issue 22: migrateDocStoreLayout', () => {
    it('moves every old key to its tagged name, values and TTLs kept; other keys and prefixes untouched; twice is harmless', async () => {
      const redis = connect(topology);
      const prefix = `test-layout-${randomUUID()}`;
      await writeOld(redis, prefix);
      // Not the DocStore's, or not this prefix's: left alone.
      const others = [`${prefix}:{pool:openai}:keys`, `${prefix}:streams:alive:instance-1`, `${prefix}:businessy:thing`, `${prefix}-neighbour:business:settings`];
      for (const key of others) await redis.set(key, 'other');

      const lines: string[] = [];
      const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(line) } });
      expect(await migrateDocStoreLayout(redis, prefix, logger)).toEqual({ renamed: OLD_COUNT, conflicts: 0, scanned: true });
      await expectMigrated(redis, prefix);
      for (const key of others) expect(await redis.get(key), key).toBe('other');
      expect(await redis.get(docStoreRedisKey(prefix, LAYOUT_MARKER_KEY))).toBe('2');
      expect(lines.filter((l) => l.includes('hash-tagged layout'))).toEqual([expect.stringContaining(`"renamed":${OLD_COUNT}`)]);

      // Again: the marker says done, nothing is scanned or moved.
      expect(await migrateDocStoreLayout(redis, prefix, logger)).toEqual({ renamed: 0, conflicts: 0, scanned: false });
      // Even without the marker (lost, or an instance racing the first): nothing left to move.
      await redis.del(docStoreRedisKey(prefix, LAYOUT_MARKER_KEY));
      expect(await migrateDocStoreLayout(redis, prefix, logger)).toEqual({ renamed: 0, conflicts: 0, scanned: true });
      await expectMigrated(redis, prefix);
      expect(lines.filter((l) => l.includes('hash-tagged layout'))).toHaveLength(1);
    });

    it('two instances starting together move each key once, and neither reports a conflict', async () => {
      const [one, two] = [connect(topology), connect(topology)];
      const prefix = `test-layout-${randomUUID()}`;
      await writeOld(one, prefix);
      const [first, second] = await Promise.all([migrateDocStoreLayout(one, prefix), migrateDocStoreLayout(two, prefix)]);
      expect(first.renamed + second.renamed).toBe(OLD_COUNT);
      expect(first.conflicts + second.conflicts).toBe(0);
      await expectMigrated(one, prefix);
    });

    it('an old key whose new name is taken stays where it is, counted and logged; the new value is kept', async () => {
      const redis = connect(topology);
      const prefix = `test-layout-${randomUUID()}`;
      await writeOld(redis, prefix, { 'business:settings': OLD['business:settings']!, 'byok:users': OLD['byok:users']! });
      // A new instance already wrote the tagged key (an old one kept running after it started).
      await redis.hset(docStoreRedisKey(prefix, 'business:settings'), { prompt_soft_limit: '99' });
      const lines: string[] = [];
      const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(line) } });
      expect(await migrateDocStoreLayout(redis, prefix, logger)).toEqual({ renamed: 1, conflicts: 1, scanned: true });
      expect(await redis.hgetall(docStoreRedisKey(prefix, 'business:settings'))).toEqual({ prompt_soft_limit: '99' });
      expect(await redis.hgetall(`${prefix}:business:settings`)).toEqual(OLD_SETTINGS);
      expect(await redis.hgetall(docStoreRedisKey(prefix, 'byok:users'))).toEqual({ alice: '1' });
      expect(lines.filter((l) => l.includes('"level":"error"') && l.includes('left in place'))).toEqual([expect.stringContaining('"conflicts":1')]);
    });

    it("a Redis DocStore migrates before its first command: the first read sees the earlier version's data", async () => {
      const redis = connect(topology);
      const prefix = `test-layout-${randomUUID()}`;
      await writeOld(redis, prefix);
      const store = createRedisDocStore({ redis, prefix });
      try {
        // Issued together, before the migration ran: each waits for it.
        const [limits, settings, seeded, keys] = await Promise.all([
          store.mapGet('usage:limits', 'alice'),
          store.mapGetAll('business:settings'),
          store.getJson('business:seeded'),
          store.keysWithPrefix('byok:'),
        ]);
        expect(limits).toEqual({ rpm: 7 });
        expect(Object.fromEntries(settings)).toEqual({ prompt_soft_limit: 1234, prompt_hard_limit: 4321 });
        expect(seeded).toEqual({ at: '2026-01-01T00:00:00.000Z' });
        expect(keys.sort()).toEqual(['byok:keys:alice', 'byok:settings:alice', 'byok:users']);
        await expectMigrated(redis, prefix);
      } finally {
        await store.close();
      }
    });
  });
});

describe('issue 22: a gateway started on an earlier version\'s Redis keeps its data', () => {
  it('business settings and user limits written in the old layout are what the gateway serves, not the defaults', async () => {
    const redis = connectRedis(inject('redisUrl'));
    clients.push(redis);
    // REDIS_PREFIX takes at most 40 characters.
    const prefix = `layout-gw-${randomUUID().slice(0, 13)}`;
    // An earlier version's seeded catalog, with two settings changed by an admin.
    const settings = Object.fromEntries(BUSINESS_SETTING_KEYS.map((key) => [key, JSON.stringify(DEFAULT_BUSINESS_CONFIG.settings[key])]));
    settings.prompt_soft_limit = '1234';
    settings.prompt_hard_limit = '4321';
    const models = Object.fromEntries(DEFAULT_BUSINESS_CONFIG.models.map((m) => [m.id, JSON.stringify(modelEntrySchema.parse(m))]));
    await writeOld(redis, prefix, {
      'business:seeded': OLD['business:seeded']!,
      'business:settings': { hash: settings },
      'business:models': { hash: models },
      'usage:limits': { hash: { carol: JSON.stringify({ rpm: 7, weight: 3 }) } },
    });
    await using gw = await startTestGateway({ env: { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix } });
    const admin = gw.trpc(await gw.token('root', 'admin'));
    expect((await admin.config.get.query()).settings).toMatchObject({ prompt_soft_limit: 1234, prompt_hard_limit: 4321 });
    expect(await admin.users.limits.query({ userId: 'carol' })).toEqual({ rpm: 7, weight: 3 });
    for (const key of ['business:seeded', 'business:settings', 'business:models', 'usage:limits']) expect(await redis.exists(`${prefix}:${key}`), key).toBe(0);
    expect(await redis.get(docStoreRedisKey(prefix, LAYOUT_MARKER_KEY))).toBe('2');
  });
});
