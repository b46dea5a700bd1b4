import type { Logger } from '../observability/logger';
import { duplicateClient, scanKeys, type RedisClient } from '../ops/redisClient';
import type { DocStore, DocWrite, OnceBatch, ReserveResult, WindowHit } from './DocStore';
import { assertOneArea, docStoreKeyOf, docStoreRedisKey, docStoreScanPattern } from './docStoreKeys';
import { migrateDocStoreLayout } from './migrateDocStoreLayout';
import { assertNoSecrets, assertNotSecretIdentifier } from './secretGuard';

/**
 * The shared DocStore: every gateway instance on one Redis sees the same documents, counters and
 * rate windows. Keys are hash-tagged by area, `<prefix>:{<area>}:<rest>` (docStoreKeys.ts: each
 * multi-key step stays on one Redis Cluster slot, issue 22); change notifications are pub/sub on
 * `<prefix>:<channel>` over a second connection (a subscribed connection cannot run other commands).
 */
export interface RedisDocStoreOptions {
  redis: RedisClient;
  prefix?: string;
  /** Quit the connection in close(). Default false: whoever made the connection closes it. */
  quitOnClose?: boolean;
  /**
   * Move an earlier version's untagged keys to the tagged layout before the first command
   * (migrateDocStoreLayout; once per prefix). Default true.
   */
  migrateLayout?: boolean;
  logger?: Logger;
}

// Sliding-window log: a sorted set of hit times. Counted only when allowed, so a refused caller
// does not push its own retry time further out.
const WINDOW_HIT = `
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count >= limit then
  local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  return {0, count, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, window)
return {1, count + 1, 0}
`;

const SET_IF_PRESENT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
`;

// Check-and-reserve: expired holds leave, then spent (the counter field plus the caller's unwritten
// records) and the live holds decide; an admitted request's hold is placed in the same step.
// A hold is a sorted-set member '<id>:<amount>' scored by its expiry; the set expires with its
// last hold.
const RESERVE = `
local counters, holds = KEYS[1], KEYS[2]
local field, extra, limit, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
local spent = tonumber(redis.call('HGET', counters, field) or '0') + extra
local held = 0
for _, member in ipairs(redis.call('ZRANGE', holds, 0, -1)) do
  held = held + tonumber(string.match(member, ':(%d+)$'))
end
if spent + held >= limit then return {0, spent, held} end
if ARGV[5] then
  local expires = tonumber(ARGV[6])
  redis.call('ZADD', holds, expires, ARGV[5])
  local ttl = math.max(1, expires - now)
  if redis.call('PTTL', holds) < ttl then redis.call('PEXPIRE', holds, ttl) end
end
return {1, spent, held}
`;

// At most once per marker: SET NX of the marker and the increments and releases in one step, so
// a retried batch (its first reply lost) is a no-op. ARGV[2] is JSON: f = a confirmed marker to
// delete first (KEYS[2]), w = writes [ttl or '', [field, delta, ...]] on the next KEYS, r = hold
// members to remove from the KEYS after those. Deltas are strings: integers beyond 2^31 survive.
const APPLY_ONCE = `
local spec = cjson.decode(ARGV[2])
local k = 2
if spec.f == 1 then
  redis.call('DEL', KEYS[2])
  k = 3
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
for _, w in ipairs(spec.w) do
  local key = KEYS[k]
  k = k + 1
  local fields = w[2]
  for i = 1, #fields, 2 do redis.call('HINCRBY', key, fields[i], fields[i + 1]) end
  if w[1] ~= '' then redis.call('PEXPIRE', key, w[1]) end
end
for _, member in ipairs(spec.r) do
  redis.call('ZREM', KEYS[k], member)
  k = k + 1
end
return 1
`;

// Several writes as one. A Lua script runs without other commands in between but does not roll
// back, so everything that could fail midway (a key of the wrong type) is checked before the
// first write. ARGV[1] is '1' when KEYS[1] must not exist; then four arguments per write: the
// command, the index of its key in KEYS, the field ('' for SET), the value ('' for HDEL).
const TRANSACTION = `
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 4 do
  local want = ARGV[i] == 'SET' and 'string' or 'hash'
  local found = redis.call('TYPE', KEYS[tonumber(ARGV[i + 1])])['ok']
  if found ~= 'none' and found ~= want then return redis.error_reply('WRONGTYPE transaction: a key holds the wrong kind of value; nothing written') end
end
for i = 2, #ARGV, 4 do
  local command, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if command == 'SET' then redis.call('SET', key, ARGV[i + 3])
  elseif command == 'HSET' then redis.call('HSET', key, ARGV[i + 2], ARGV[i + 3])
  else redis.call('HDEL', key, ARGV[i + 2]) end
end
return 1
`;

interface ScriptedRedis {
  keyrackDocReserve(counters: string, holds: string, ...args: (string | number)[]): Promise<[number, number, number]>;
  keyrackDocApplyOnce(...keysAndArgs: (string | number)[]): Promise<number>;
  keyrackDocWindowHit(key: string, now: number, window: number, limit: number, member: string): Promise<[number, number, number]>;
  keyrackDocSetIfPresent(key: string, field: string, value: string): Promise<number>;
  keyrackDocTransaction(numberOfKeys: number, ...keysThenArgs: string[]): Promise<number>;
}

export function createRedisDocStore(options: RedisDocStoreOptions): DocStore {
  const { redis } = options;
  const prefix = options.prefix ?? 'keyrack';
  redis.defineCommand('keyrackDocWindowHit', { numberOfKeys: 1, lua: WINDOW_HIT });
  redis.defineCommand('keyrackDocSetIfPresent', { numberOfKeys: 1, lua: SET_IF_PRESENT });
  redis.defineCommand('keyrackDocReserve', { numberOfKeys: 2, lua: RESERVE });
  // The number of keys varies per batch: given as the first argument.
  redis.defineCommand('keyrackDocApplyOnce', { lua: APPLY_ONCE });
  redis.defineCommand('keyrackDocTransaction', { lua: TRANSACTION });
  const scripted = redis as unknown as ScriptedRedis;
  const k = (key: string) => docStoreRedisKey(prefix, key);
  /** Channels are not keys: their names are as they always were. */
  const ch = (channel: string) => `${prefix}:${channel}`;
  const encode = (where: string, value: unknown): string => {
    assertNoSecrets(where, value);
    return JSON.stringify(value);
  };
  const decode = (text: string | null | undefined): unknown => (text == null ? null : JSON.parse(text));

  let subscriber: RedisClient | null = null;
  const listeners = new Map<string, Set<(message: string) => void>>();
  /** Per channel: resolves once Redis confirmed the SUBSCRIBE, so every caller awaits the same confirmation. */
  const subscribed = new Map<string, Promise<unknown>>();
  let hitSequence = 0;

  async function subscriberConnection(): Promise<RedisClient> {
    if (subscriber) return subscriber;
    const connection = duplicateClient(redis);
    connection.on('message', (channel: string, message: string) => {
      for (const listener of listeners.get(channel) ?? []) listener(message);
    });
    // ioredis re-subscribes its channels after a reconnect.
    connection.on('error', () => {});
    subscriber = connection;
    return connection;
  }

  const store: DocStore = {
    kind: 'redis',
    async getJson(key) {
      return decode(await redis.get(k(key)));
    },
    async setJson(key, value) {
      await redis.set(k(key), encode(key, value));
    },
    async setJsonIfAbsent(key, value) {
      return (await redis.set(k(key), encode(key, value), 'NX')) === 'OK';
    },
    async delete(key) {
      await redis.del(k(key));
    },
    async mapGet(key, field) {
      return decode(await redis.hget(k(key), field));
    },
    async mapGetAll(key) {
      const all = await redis.hgetall(k(key));
      return new Map(Object.entries(all).map(([field, text]) => [field, JSON.parse(text) as unknown]));
    },
    async mapSet(key, field, value) {
      assertNotSecretIdentifier(`${key} (a field name)`, field);
      await redis.hset(k(key), field, encode(`${key}[${field}]`, value));
    },
    async mapSetIfPresent(key, field, value) {
      return (await scripted.keyrackDocSetIfPresent(k(key), field, encode(`${key}[${field}]`, value))) === 1;
    },
    async mapDelete(key, field) {
      return (await redis.hdel(k(key), field)) > 0;
    },
    async mapSize(key) {
      return redis.hlen(k(key));
    },
    async transaction(writes: readonly DocWrite[], options = {}) {
      if (writes.length === 0 && options.ifAbsent === undefined) return true;
      assertOneArea('transaction', [...(options.ifAbsent === undefined ? [] : [options.ifAbsent]), ...writes.map((w) => w.key)]);
      const keys: string[] = [];
      const indexOf = (key: string) => {
        const full = k(key);
        const at = keys.indexOf(full);
        return String((at === -1 ? keys.push(full) : at + 1));
      };
      if (options.ifAbsent !== undefined) indexOf(options.ifAbsent);
      // Every value encoded (and so checked by the guard) before the script is sent.
      const args = [options.ifAbsent === undefined ? '0' : '1'];
      for (const write of writes) {
        if (write.op === 'setJson') args.push('SET', indexOf(write.key), '', encode(write.key, write.value));
        else if (write.op === 'mapDelete') args.push('HDEL', indexOf(write.key), write.field, '');
        else {
          assertNotSecretIdentifier(`${write.key} (a field name)`, write.field);
          args.push('HSET', indexOf(write.key), write.field, encode(`${write.key}[${write.field}]`, write.value));
        }
      }
      return (await scripted.keyrackDocTransaction(keys.length, ...keys, ...args)) === 1;
    },
    async increment(key, deltas, ttlMs) {
      for (const field of Object.keys(deltas)) assertNotSecretIdentifier(`${key} (a field name)`, field);
      const multi = redis.multi();
      for (const [field, delta] of Object.entries(deltas)) {
        if (Number.isInteger(delta)) multi.hincrby(k(key), field, delta);
        else multi.hincrbyfloat(k(key), field, delta);
      }
      if (ttlMs !== undefined) multi.pexpire(k(key), Math.ceil(ttlMs));
      const results = await multi.exec();
      if (!results) throw new Error('redis transaction aborted');
      for (const [error] of results) if (error) throw error;
    },
    async applyOnce(batch: OnceBatch) {
      assertOneArea('applyOnce', [batch.markerKey, ...(batch.forget === undefined ? [] : [batch.forget]), ...batch.writes.map((w) => w.key), ...(batch.releases ?? []).map((h) => h.key)]);
      const keys = [k(batch.markerKey)];
      if (batch.forget !== undefined) keys.push(k(batch.forget));
      const writes = batch.writes.map((write) => {
        keys.push(k(write.key));
        const fields: string[] = [];
        for (const [field, delta] of Object.entries(write.deltas)) {
          assertNotSecretIdentifier(`${write.key} (a field name)`, field);
          if (!Number.isInteger(delta)) throw new TypeError(`applyOnce takes integer deltas (${write.key})`);
          fields.push(field, String(delta));
        }
        return [write.ttlMs === undefined ? '' : String(Math.ceil(write.ttlMs)), fields];
      });
      const releases = (batch.releases ?? []).map((hold) => {
        keys.push(k(hold.key));
        return hold.member;
      });
      const spec = JSON.stringify({ f: batch.forget === undefined ? 0 : 1, w: writes, r: releases });
      return (await scripted.keyrackDocApplyOnce(keys.length, ...keys, Math.max(1, Math.ceil(batch.markerTtlMs)), spec)) === 1;
    },
    async reserve(request): Promise<ReserveResult> {
      assertOneArea('reserve', [request.counterKey, request.holdsKey]);
      const args: (string | number)[] = [request.field, request.extra, request.limit, request.nowMs];
      const member = request.hold ? `${request.hold.id}:${request.hold.amount}` : undefined;
      if (request.hold && member) args.push(member, Math.ceil(request.hold.expiresAtMs));
      const [ok, spent, held] = await scripted.keyrackDocReserve(k(request.counterKey), k(request.holdsKey), ...args);
      return ok === 1 && member ? { ok: true, spent, held, hold: { key: request.holdsKey, member } } : { ok: ok === 1, spent, held };
    },
    async counters(key, fields) {
      const out: Record<string, number> = {};
      if (fields) {
        if (fields.length === 0) return out;
        const values = await redis.hmget(k(key), ...fields);
        fields.forEach((field, i) => {
          const value = values[i];
          if (value != null) out[field] = Number(value);
        });
        return out;
      }
      for (const [field, value] of Object.entries(await redis.hgetall(k(key)))) out[field] = Number(value);
      return out;
    },
    async windowHit(key, nowMs, windowMs, limit): Promise<WindowHit> {
      const member = `${nowMs}:${process.pid}:${++hitSequence}:${Math.random().toString(36).slice(2, 8)}`;
      const [allowed, count, retryAfterMs] = await scripted.keyrackDocWindowHit(k(key), nowMs, windowMs, limit, member);
      return allowed === 1 ? { allowed: true, count } : { allowed: false, count, retryAfterMs: Math.max(1, retryAfterMs) };
    },
    async keysWithPrefix(keyPrefix) {
      // SCAN (per master on a cluster) may return a key more than once.
      const found = new Set<string>();
      for await (const batch of scanKeys(redis, docStoreScanPattern(prefix, keyPrefix))) {
        for (const redisKey of batch) {
          const key = docStoreKeyOf(prefix, redisKey);
          if (key !== null && key.startsWith(keyPrefix)) found.add(key);
        }
      }
      return [...found];
    },
    async publish(channel, message) {
      assertNoSecrets(`channel ${channel}`, message);
      await redis.publish(ch(channel), message);
    },
    async subscribe(channel, listener) {
      const connection = await subscriberConnection();
      const full = ch(channel);
      let set = listeners.get(full);
      if (!set) listeners.set(full, (set = new Set()));
      set.add(listener);
      let ready = subscribed.get(full);
      if (!ready) subscribed.set(full, (ready = connection.subscribe(full)));
      await ready;
      return async () => {
        const current = listeners.get(full);
        current?.delete(listener);
        if (current && current.size === 0) {
          listeners.delete(full);
          subscribed.delete(full);
          await connection.unsubscribe(full).catch(() => {});
        }
      };
    },
    async close() {
      listeners.clear();
      subscribed.clear();
      if (subscriber) await subscriber.quit().catch(() => subscriber?.disconnect());
      subscriber = null;
      if (options.quitOnClose) await redis.quit();
    },
  };
  return options.migrateLayout === false ? store : afterLayoutMigration(store, () => migrateDocStoreLayout(redis, prefix, options.logger));
}

/**
 * The store, each of its commands run only once the layout migration has (first call; a
 * failed migration, Redis away, is tried again by the next call). Afterwards one boolean test.
 */
function afterLayoutMigration(store: DocStore, migrate: () => Promise<unknown>): DocStore {
  let done = false;
  let running: Promise<void> | null = null;
  const ready = (): Promise<void> =>
    (running ??= migrate().then(
      () => {
        done = true;
      },
      (error: unknown) => {
        running = null;
        throw error;
      },
    ));
  const gated = { ...store } as Record<string, unknown>;
  for (const [name, member] of Object.entries(store)) {
    // publish/subscribe are channels, close needs nothing: they never wait for the migration.
    if (typeof member !== 'function' || name === 'close' || name === 'publish' || name === 'subscribe') continue;
    const method = member as (...args: unknown[]) => Promise<unknown>;
    gated[name] = (...args: unknown[]) => (done ? method(...args) : ready().then(() => method(...args)));
  }
  return gated as unknown as DocStore;
}
