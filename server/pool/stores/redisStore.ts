import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisClient } from '../../ops/redisClient';
import { keyReasonSchema } from '../../../shared';
import type { Clock, CountingPoolStore, KeyState, LearnedLimits, LearnedWindow, LimitObservation, ObservedWindow, PickAsk, PickResult, PoolDefinition } from '../types';
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
  redis: RedisClient;
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
  /**
   * Issue 22: what an answer says of its account's windows rides on the record call the
   * outcome makes anyway; on pools whose token counts are batched it costs a write of its own,
   * so there it is written only when it matters: the first time, a changed limit, little left
   * (a quarter of the limit or less), or this long after the account's last write. Default 1 000 ms.
   */
  learnedWriteMs?: number;
}

/** Request/token logs outlive the window by this margin before Redis expires them. */
const LOG_TTL_MARGIN_MS = 60_000;
/** Window entries per `add` script call (three arguments each). */
const ADD_BATCH = 500;
/** Accounts whose last learned-limits write is remembered (for the throttle), per instance. */
const MAX_LEARNED_WRITES = 10_000;

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
  keyrackPoolPick(...args: ScriptArg[]): Promise<[1, string] | [0, number] | [-1] | [-2] | [-3] | [3, number, string]>;
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
  /** The same with every account's logs, for an unlimited pool once an account learned limits (a {-3} reply). */
  learnedPickArgs: ScriptArg[];
  learnedNowIndex: number;
  /** Whether picks send `learnedPickArgs` (set for good by the first {-3}). */
  learned: boolean;
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
  const learnedWriteMs = options.learnedWriteMs ?? 1_000;
  const localClock = clock ?? Date.now;
  /** Per pool and account: the limits last written and when (issue 22's write throttle). */
  const learnedWrites = new Map<string, { requests: number | undefined; tokens: number | undefined; at: number }>();

  /** Whether an observation on a batched pool is worth its own write now (see learnedWriteMs). */
  function worthWriting(slot: string, seen: LimitObservation, free = false): boolean {
    const now = localClock();
    const last = learnedWrites.get(slot);
    const requests = seen.requests?.limit ?? last?.requests;
    const tokens = seen.tokens?.limit ?? last?.tokens;
    const tight = (w: ObservedWindow | undefined, limit: number | undefined) => w?.remaining !== undefined && limit !== undefined && w.remaining * 4 <= limit;
    const write = free || !last || last.requests !== requests || last.tokens !== tokens || tight(seen.requests, requests) || tight(seen.tokens, tokens) || now - last.at >= learnedWriteMs;
    if (write) {
      if (learnedWrites.size >= MAX_LEARNED_WRITES) learnedWrites.clear();
      learnedWrites.set(slot, { requests, tokens, at: now });
    }
    return write;
  }

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
    const learnedPickKeys = [meta, load, `${base}:def:${version}`, ...accountKeys];
    const pairs: ScriptArg[] = [];
    pool.keys.forEach((key, i) => pairs.push(key.fingerprint, accountOfKey[i]! + 1));
    const result: Prepared = {
      pickArgs: [pickKeys.length, ...pickKeys, '', ''],
      learnedPickArgs: [learnedPickKeys.length, ...learnedPickKeys, '', ''],
      learnedNowIndex: 1 + learnedPickKeys.length,
      learned: limited,
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
  function withAsk(list: ScriptArg[], nowIndex: number, ask: PickAsk): ScriptArg[] {
    const args = list.slice();
    if (clock) args[nowIndex] = clock();
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
      // The account logs once the pool learned limits (issue 22), the asker's arguments when
      // there is one (fair share and the queue, issue 22); the definition goes after the clock slot.
      const build = () => {
        const list = p.learned ? p.learnedPickArgs : p.pickArgs;
        const nowIndex = p.learned ? p.learnedNowIndex : p.nowIndex;
        return { args: ask ? withAsk(list, nowIndex, ask) : withNow(list, nowIndex), definitionIndex: nowIndex + 1 };
      };
      let built = build();
      let reply = await scripted.keyrackPoolPick(...built.args);
      let sendDefinition = false;
      // At most one retry of each kind: {-2} sends the definition, {-3} the account logs (issue 22).
      for (let retry = 0; retry < 2 && (reply[0] === -2 || reply[0] === -3); retry++) {
        if (reply[0] === -2) sendDefinition = true;
        else p.learned = true;
        built = build();
        const next = built.args.slice(); // never write into the shared array
        if (sendDefinition) next[built.definitionIndex] = p.definition;
        reply = await scripted.keyrackPoolPick(...next);
      }
      if (reply[0] === 1) return { ok: true, fingerprint: reply[1] };
      if (reply[0] === 0) return { ok: false, reason: 'busy', retryAfterMs: reply[1] };
      if (reply[0] === 3) return { ok: false, reason: 'busy', retryAfterMs: reply[1], ticket: reply[2] };
      if (reply[0] === -2 || reply[0] === -3) return { ok: false, reason: 'busy', retryAfterMs: 1 };
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
      const seen = outcome.kind === 'rejected' ? undefined : outcome.limits;
      if (outcome.kind === 'success') {
        const slot = `${pool.id}\u0000${key.account}`;
        // A limited-TPM success is written anyway: what it stated rides along for free.
        if (seen && worthWriting(slot, seen, pool.tpm > 0 && amount > 0)) {
          // Written now, with this account's batched tokens along (one call for both).
          const pending = pendingTokens.get(slot);
          let tokens = amount;
          if (pending && pending.pool === pool && pool.tpm === 0) {
            tokens += pending.tokens;
            pendingTokens.delete(slot);
          }
          await scripted.keyrackPoolRecord(...recordArgs(pool, key.keys, 'success', fingerprint, key.account, tokens, ''), ...observationArgs(seen));
          return;
        }
        if (amount === 0) return; // nothing to count
        if (pool.tpm === 0) {
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
      // A cooldown's record call carries what its answer stated for free (extra arguments).
      const extra = seen && kind === 'cool' ? observationArgs(seen) : [];
      if (seen && kind === 'cool') worthWriting(`${pool.id}\u0000${key.account}`, seen, true);
      await scripted.keyrackPoolRecord(...recordArgs(pool, key.keys, kind, fingerprint, key.account, amount, reason), ...extra);
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
        const at = 1 + 6 * i;
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
          learned: parseLearned(String(reply[at + 5])),
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

/** record.lua's observation arguments (issue 22): sinceMs, then per window limit, remaining, resetInMs ('' = not said). */
function observationArgs(seen: LimitObservation): ScriptArg[] {
  const n = (value: number | undefined): ScriptArg => (value === undefined || !Number.isFinite(value) ? '' : Math.max(0, Math.round(value)));
  const window = (w: ObservedWindow | undefined): ScriptArg[] => (w ? [n(w.limit), n(w.remaining), n(w.resetInMs)] : ['', '', '']);
  return [n(seen.sinceMs), ...window(seen.requests), ...window(seen.tokens)];
}

/** The meta hash's learned-limits field as lua/common.lua writes it ("rl|rr|ro|rt|tl|tr|to|tt"). */
function parseLearned(raw: string): LearnedLimits | null {
  if (raw === '') return null;
  const v = raw.split('|').map((piece) => (piece === '' ? null : Number(piece)));
  const window = (o: number): LearnedWindow | null =>
    v[o + 2] === null || v[o + 2] === undefined ? null : { limit: v[o] ?? null, remaining: v[o + 1] ?? null, observedAt: v[o + 2]!, resetAt: v[o + 3] ?? v[o + 2]! };
  const requests = window(0);
  const tokens = window(4);
  return requests || tokens ? { requests, tokens } : null;
}
