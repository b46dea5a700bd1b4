import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { keyReasonSchema } from '../../../shared';
import type { Clock, CountingPoolStore, KeyState, PickAsk, PickResult, PoolDefinition } from '../types';
import { fairnessFromHash, FAIR_WEIGHT_DEFAULT } from './fairnessFromHash';
import { groupByAccount } from './groupByAccount';

/**
 * The shared PoolStore: every gateway instance sees the same windows, cooldowns and disabled
 * keys. Each operation is one Lua script, so pick-count-skip is atomic and one round trip.
 * Key layout and window rules are documented at the top of lua/common.lua.
 *
 * Time comes from Redis TIME inside the scripts, so instances with skewed clocks agree;
 * tests inject a clock instead and its reading travels as an argument.
 */
export interface RedisStoreOptions {
  redis: Redis;
  prefix?: string;
  clock?: Clock;
  /** Idle pools' state (cursor, disabled keys, cooldowns) expires after this. Default 7 days. */
  stateTtlMs?: number;
  /** Quit the connection in close(). Default false: whoever made the connection closes it. */
  quitOnClose?: boolean;
  /**
   * Token counts of successes on unlimited-TPM pools are summed in process and written at most
   * this often (one script call per account), not once per request. Default 50 ms.
   */
  tokenFlushMs?: number;
}

/** Request/token logs outlive the window by this margin before Redis expires them. */
const LOG_TTL_MARGIN_MS = 60_000;
/** Window entries per `add` script call (three arguments each). */
const ADD_BATCH = 500;

function script(...names: string[]): string {
  const read = (file: string) => readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
  return [read('common.lua'), ...names.map(read)].join('\n');
}

const SCRIPTS = {
  // fair.lua: fair share and the wait queue (issue 22).
  keyrackPoolPick: script('fair.lua', 'pick.lua'),
  keyrackPoolRecord: script('record.lua'),
  keyrackPoolStatus: script('status.lua'),
};

type ScriptArg = string | number;
interface ScriptedRedis {
  keyrackPoolPick(...args: ScriptArg[]): Promise<[1, string] | [0, number] | [-1] | [-2] | [3, number, string]>;
  keyrackPoolRecord(...args: ScriptArg[]): Promise<number>;
  keyrackPoolStatus(...args: ScriptArg[]): Promise<(string | number)[]>;
}

/** Script arguments derived from a pool definition, built once per definition object. */
interface Prepared {
  /**
   * The pick's arguments: numkeys, meta, definition key (+ the account logs of limited pools),
   * the clock slot at `nowIndex`, and '' where the definition JSON goes after a {-2} reply.
   */
  pickArgs: ScriptArg[];
  /** The definition as pick.lua stores and reads it (see its header). */
  definition: string;
  statusArgs: ScriptArg[];
  nowIndex: number;
  statusNowIndex: number;
  /** Per fingerprint: its account name and the record script's KEYS. */
  byFingerprint: Map<string, { account: string; keys: string[] }>;
  /** The pool's fair-share hash and wait queue (issue 22). */
  fairKey: string;
  ulogKey: string;
  queueKey: string;
}

const NO_KEYS: PickResult = Object.freeze({ ok: false, reason: 'no_keys', retryAfterMs: null });

export function createRedisStore(options: RedisStoreOptions): CountingPoolStore {
  const { redis, clock } = options;
  const prefix = options.prefix ?? 'keyrack';
  const stateTtlMs = options.stateTtlMs ?? 7 * 24 * 3_600_000;
  // defineCommand runs EVALSHA and falls back to EVAL (reloading the script) on NOSCRIPT.
  for (const [name, lua] of Object.entries(SCRIPTS)) redis.defineCommand(name, { lua });
  const scripted = redis as unknown as ScriptedRedis;
  const prepared = new WeakMap<PoolDefinition, Prepared>();
  const tokenFlushMs = options.tokenFlushMs ?? 50;

  // Successes on a pool without a TPM limit only feed the status estimate and least-loaded:
  // nothing is refused on them, so their token counts need not cost a Redis write per request
  // (issue #8: that write was the second round trip of every request). They wait here, summed
  // per account, until the next flush; status() and close() flush first.
  const pendingTokens = new Map<string, { pool: PoolDefinition; fingerprint: string; tokens: number }>();
  let flushTimer: NodeJS.Timeout | null = null;
  let flushing: Promise<void> = Promise.resolve();

  function recordArgs(pool: PoolDefinition, keys: string[], kind: string, fingerprint: string, account: string, amount: number, reason: string): ScriptArg[] {
    return [keys.length, ...keys, clock ? clock() : '', kind, fingerprint, account, amount, reason, pool.windowMs, stateTtlMs, pool.windowMs + LOG_TTL_MARGIN_MS, pool.tpm];
  }

  function flushTokens(): Promise<void> {
    if (flushTimer) {
      clearTimeout(flushTimer);
      flushTimer = null;
    }
    if (pendingTokens.size === 0) return flushing;
    const batch = [...pendingTokens.values()];
    pendingTokens.clear();
    const writes = batch.map(({ pool, fingerprint, tokens }) => {
      const key = prepare(pool).byFingerprint.get(fingerprint);
      return key ? scripted.keyrackPoolRecord(...recordArgs(pool, key.keys, 'success', fingerprint, key.account, tokens, '')) : Promise.resolve(0);
    });
    // Counts for a display: a failed write loses them, it does not fail a request.
    flushing = Promise.all([flushing, ...writes]).then(
      () => undefined,
      () => undefined,
    );
    return flushing;
  }

  function prepare(pool: PoolDefinition): Prepared {
    const cached = prepared.get(pool);
    if (cached) return cached;
    const base = `${prefix}:{pool:${pool.id}}`;
    const meta = `${base}:meta`;
    const load = `${base}:load`;
    const { accounts, accountOfKey } = groupByAccount(pool.keys);
    const accountKeys: string[] = [];
    for (const account of accounts) accountKeys.push(`${base}:r:${account}`, `${base}:t:${account}`, `${base}:s:${account}`);
    const byFingerprint = new Map<string, { account: string; keys: string[] }>();
    pool.keys.forEach((key, i) => {
      const a = accountOfKey[i]!;
      if (!byFingerprint.has(key.fingerprint)) {
        byFingerprint.set(key.fingerprint, { account: key.account, keys: [meta, ...accountKeys.slice(3 * a, 3 * a + 3), load] });
      }
    });
    const logTtlMs = pool.windowMs + LOG_TTL_MARGIN_MS;
    const strategy = pool.strategy === 'least-loaded' ? 'l' : 'r';
    const definition = JSON.stringify([
      pool.windowMs,
      pool.rpm,
      pool.tpm,
      strategy,
      stateTtlMs,
      logTtlMs,
      accounts,
      pool.keys.map((k) => k.fingerprint),
      accountOfKey.map((a) => a + 1),
    ]);
    // Named by content: same configuration, same key, on every instance.
    const version = createHash('sha256').update(definition).digest('base64url').slice(0, 22);
    const limited = pool.rpm > 0 || pool.tpm > 0;
    // pick.lua names these from the meta key (issue 22); status and leave() read them here.
    const fairKey = `${base}:fair`;
    const queueKey = `${base}:queue`;
    const ulogKey = `${base}:ulog`;
    const pickKeys = [meta, load, `${base}:def:${version}`, ...(limited ? accountKeys : [])];
    const pairs: ScriptArg[] = [];
    pool.keys.forEach((key, i) => pairs.push(key.fingerprint, accountOfKey[i]! + 1));
    const result: Prepared = {
      pickArgs: [pickKeys.length, ...pickKeys, '', ''],
      definition,
      nowIndex: 1 + pickKeys.length,
      statusArgs: [2 + accountKeys.length, meta, load, ...accountKeys, '', pool.windowMs, pool.rpm, pool.tpm, accounts.length, ...accounts, ...pairs],
      statusNowIndex: 3 + accountKeys.length,
      byFingerprint,
      fairKey,
      ulogKey,
      queueKey,
    };
    prepared.set(pool, result);
    return result;
  }

  async function storeNow(): Promise<number> {
    if (clock) return clock();
    const [seconds, micros] = await redis.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  /** The pick's arguments with the asker's (issue 22): user, weight, ticket, queue max, wait. */
  function withAsk(p: Prepared, ask: PickAsk): ScriptArg[] {
    const args = p.pickArgs.slice();
    if (clock) args[p.nowIndex] = clock();
    args.push(ask.user ?? '', ask.weight ?? FAIR_WEIGHT_DEFAULT, ask.ticket ?? '', ask.queueMax ?? 0, Math.max(0, Math.floor(ask.waitMs ?? 0)));
    return args;
  }

  function withNow(args: ScriptArg[], index: number): ScriptArg[] {
    if (!clock) return args;
    const copy = args.slice();
    copy[index] = clock();
    return copy;
  }

  return {
    async pick(pool, ask) {
      if (pool.keys.length === 0) return NO_KEYS;
      const p = prepare(pool);
      const args = ask ? withAsk(p, ask) : withNow(p.pickArgs, p.nowIndex);
      let reply = await scripted.keyrackPoolPick(...args);
      if (reply[0] === -2) {
        // First pick of this configuration here, or its definition expired: send it along.
        const withDefinition = args.slice(); // never write into the shared array
        withDefinition[p.nowIndex + 1] = p.definition;
        reply = await scripted.keyrackPoolPick(...withDefinition);
      }
      if (reply[0] === 1) return { ok: true, fingerprint: reply[1] };
      if (reply[0] === 0) return { ok: false, reason: 'busy', retryAfterMs: reply[1] };
      if (reply[0] === 3) return { ok: false, reason: 'busy', retryAfterMs: reply[1], ticket: reply[2] };
      return NO_KEYS;
    },

    async leave(pool, ticket) {
      await redis.zrem(prepare(pool).queueKey, ticket);
    },

    async fairness(pool) {
      const p = prepare(pool);
      const now = await storeNow();
      const [fields, expired, waiters] = await Promise.all([
        redis.hgetall(p.fairKey),
        redis.zrangebyscore(p.ulogKey, '-inf', now - pool.windowMs),
        redis.zrange(p.queueKey, 0, -1),
      ]);
      return fairnessFromHash(fields, expired, waiters, now, pool.windowMs);
    },

    async record(pool, fingerprint, outcome) {
      if (outcome.kind === 'transient') return;
      const key = prepare(pool).byFingerprint.get(fingerprint);
      if (!key) return; // the key left the pool's configuration meanwhile
      const amount =
        outcome.kind === 'success' ? Math.max(0, Math.round(outcome.tokens)) : outcome.kind === 'rejected' ? 0 : Math.max(0, Math.round(outcome.cooldownMs));
      if (outcome.kind === 'success') {
        if (amount === 0) return; // nothing to count
        if (pool.tpm === 0) {
          const slot = `${pool.id}\u0000${key.account}`;
          const pending = pendingTokens.get(slot);
          if (pending && pending.pool === pool) pending.tokens += amount;
          else {
            // A new definition object (config reload): its predecessor's sum goes out first.
            if (pending) void flushTokens();
            pendingTokens.set(slot, { pool, fingerprint, tokens: amount });
          }
          if (!flushTimer) {
            flushTimer = setTimeout(() => void flushTokens(), tokenFlushMs);
            flushTimer.unref();
          }
          return;
        }
      }
      const kind = outcome.kind === 'success' ? 'success' : outcome.kind === 'rejected' ? 'rejected' : 'cool';
      const reason = outcome.kind === 'rate_limited' || outcome.kind === 'quota_exhausted' ? outcome.kind : '';
      await scripted.keyrackPoolRecord(...recordArgs(pool, key.keys, kind, fingerprint, key.account, amount, reason));
    },

    async add(pool, fingerprint, entries) {
      const key = prepare(pool).byFingerprint.get(fingerprint);
      if (!key) return;
      for (let from = 0; from < entries.length; from += ADD_BATCH) {
        const args = recordArgs(pool, key.keys, 'add', fingerprint, key.account, pool.rpm, '');
        for (const entry of entries.slice(from, from + ADD_BATCH)) {
          args.push(Math.max(0, Math.round(entry.ageMs)), Math.max(0, Math.round(entry.requests)), Math.max(0, Math.round(entry.tokens)));
        }
        await scripted.keyrackPoolRecord(...args);
      }
    },

    async setEnabled(pool, fingerprint, enabled) {
      const key = prepare(pool).byFingerprint.get(fingerprint);
      if (!key) return;
      await scripted.keyrackPoolRecord(key.keys.length, ...key.keys, '', enabled ? 'enable' : 'disable', fingerprint, key.account, 0, '', pool.windowMs, stateTtlMs, 0, pool.tpm);
    },

    async status(pool) {
      if (pool.keys.length === 0) return [];
      await flushTokens();
      const p = prepare(pool);
      const reply = await scripted.keyrackPoolStatus(...withNow(p.statusArgs, p.statusNowIndex));
      return pool.keys.map((key, i): KeyState => {
        const at = 1 + 5 * i;
        const reason = String(reply[at + 1]);
        const until = String(reply[at + 2]);
        return {
          fingerprint: key.fingerprint,
          account: key.account,
          status: reply[at] as KeyState['status'],
          reason: reason === '' ? null : keyReasonSchema.parse(reason),
          until: until === '' ? null : Number(until),
          requestsThisWindow: Number(reply[at + 3]),
          tokensThisWindow: Number(reply[at + 4]),
        };
      });
    },

    now: storeNow,

    async close() {
      await flushTokens();
      if (options.quitOnClose) await redis.quit();
    },
  };
}
