import type { RedisClient } from './redisClient';
import type { Logger } from '../observability/logger';
import { createMemoryStore } from '../pool/stores/memoryStore';
import { WindowLog } from '../pool/stores/windowLog';
import { systemClock, type Clock, type CountingPoolStore, type Outcome, type PickAsk, type PickResult, type PoolDefinition, type PoolStore, type WindowEntry } from '../pool/types';

/**
 * A PoolStore that keeps the gateway serving while Redis is away (issue #7, "Redis faults").
 *
 * - `redis` mode: every call goes to the primary (Redis) store. Meanwhile the disabled keys and
 *   cooldowns of the pools in use are mirrored into the local fallback every few seconds, so a
 *   key rejected before an outage stays out during it.
 * - `fallback` mode: a call that fails on Redis, or any call while the connection is not ready,
 *   runs on the in-process fallback with each limit divided by the number of instances N that
 *   were sharing Redis, rounded down: floor(limit / N), so N instances together never exceed
 *   the limit (issue 24.9: ceil let 3 instances on a 5 rpm key admit 6). A share of 0 admits
 *   nothing. The fallback does not start from empty windows: each limited account's window is
 *   seeded with what this instance last read of it in Redis (every mirror) plus its own
 *   admissions since, so requests admitted just before the outage still count. Keys rejected,
 *   disabled and cooled meanwhile, and the requests and tokens admitted, are journalled.
 * - Recovery: on ioredis 'ready' (and by a probe every `probeMs`, for a Redis that stalls
 *   rather than disconnects) the journal is pushed to Redis, admissions included (so the shared
 *   windows count the outage's requests), and calls go back to it.
 */
export type StoreMode = 'redis' | 'fallback';

export interface ResilientStoreOptions {
  /** The connection the primary store uses (see createGatewayRedis); its events drive the mode. */
  redis: RedisClient;
  /** createRedisStore({ redis, prefix }) on that same connection. */
  primary: CountingPoolStore;
  /** Default: createMemoryStore({ clock }). */
  fallback?: CountingPoolStore;
  /** Live instances sharing Redis (InstanceRegistry.count); read when Redis goes away. Default 1. */
  instanceCount?: () => number;
  /**
   * Divisor when Redis is down from start-up and no instance count was ever seen. Default 1:
   * set it to the number of replicas you run so a cold start during an outage stays within limits.
   */
  assumedInstances?: number;
  logger?: Logger;
  clock?: Clock;
  /** While degraded, probe Redis this often. Default 1 000 ms. */
  probeMs?: number;
  /** While healthy, mirror disabled/cooling state of pools in use this often. Default 5 000 ms. 0 = only on mirrorNow(). */
  mirrorMs?: number;
}

export interface ResilientStore extends PoolStore {
  mode(): StoreMode;
  /** True while serving from the local fallback: /readyz should fail (the instance still serves). */
  isDegraded(): boolean;
  /** The divisor the fallback applies now (1 in redis mode). */
  fallbackDivisor(): number;
  /** Called on every mode change; returns an unsubscribe function. Usage buffers flush on 'redis'. */
  onModeChange(listener: (mode: StoreMode) => void): () => void;
  /** Try Redis now; resolves to the mode afterwards. Called by the probe; tests and /readyz may too. */
  probe(): Promise<StoreMode>;
  /** Copy Redis's disabled/cooling state of the pools in use into the fallback now (runs every mirrorMs). */
  mirrorNow(): Promise<void>;
}

interface Journal {
  pool: PoolDefinition;
  /** Latest admin or provider decision per key while degraded. */
  enabled: Map<string, 'rejected' | 'disabled' | 'enabled'>;
  /** Cooldowns learned while degraded: absolute end on the local clock. */
  cooling: Map<string, { kind: 'rate_limited' | 'quota_exhausted'; until: number }>;
  /** Requests (limited rpm) and tokens (limited tpm) admitted locally, by fingerprint, local clock. */
  admitted: Map<string, Counted>;
}

/** Requests and tokens counted against one key, timestamped on the local clock. */
interface Counted {
  requests: WindowLog;
  tokens: WindowLog;
}

/** A limited pool's last known use while Redis serves, carried into the fallback when it goes. */
interface Recent {
  pool: PoolDefinition;
  /** The account windows as last read from Redis (mirror), on the local clock. */
  snapshot: { at: number; requests: Map<string, number>; tokens: Map<string, number> } | null;
  /** This instance's own admissions through Redis, by fingerprint, trimmed to the window. */
  own: Map<string, Counted>;
}

/** Pools whose state is mirrored; BYOK pools come and go, so the set is bounded and ages out. */
const MAX_MIRRORED_POOLS = 1_000;
const MIRROR_IDLE_MS = 120_000;

export function createResilientStore(options: ResilientStoreOptions): ResilientStore {
  const { redis, primary, logger } = options;
  const clock = options.clock ?? systemClock;
  const fallback: CountingPoolStore = options.fallback ?? createMemoryStore({ clock });
  const probeMs = options.probeMs ?? 1_000;
  const mirrorMs = options.mirrorMs ?? 5_000;
  const instanceCount = options.instanceCount ?? (() => 1);
  let startingUp = false;
  let divisor = 1;
  let mode: StoreMode = 'redis';
  let closed = false;
  let recovering: Promise<StoreMode> | undefined;
  const listeners = new Set<(mode: StoreMode) => void>();
  const journals = new Map<string, Journal>();
  const inUse = new Map<string, { pool: PoolDefinition; lastUsed: number }>();
  /** Limited pools only (an unlimited one has no window to overrun): bounded like inUse. */
  const recent = new Map<string, Recent>();
  const divided = new WeakMap<PoolDefinition, { divisor: number; pool: PoolDefinition; closed: boolean }>();
  let probeTimer: ReturnType<typeof setInterval> | undefined;
  let mirrorTimer: ReturnType<typeof setInterval> | undefined;

  function currentInstances(): number {
    return Math.max(1, Math.floor(instanceCount()));
  }

  function setMode(next: StoreMode): void {
    if (mode === next) return;
    mode = next;
    for (const listener of listeners) {
      try {
        listener(next);
      } catch (error) {
        logger?.error({ err: { name: (error as Error).name } }, 'store mode listener failed');
      }
    }
  }

  function degrade(cause: unknown): void {
    if (closed || mode === 'fallback') return;
    divisor = currentInstances();
    seedFallback();
    warnDegraded(cause, false);
    setMode('fallback');
    startProbing();
  }

  /**
   * The last known use of each limited pool into the fallback's windows: the counts last read
   * from Redis, placed at the time they were read (they can only have left the window later
   * than real entries would), and this instance's own admissions since, at their times.
   */
  function seedFallback(): void {
    const now = clock();
    for (const { pool, snapshot, own } of recent.values()) {
      const cutoff = now - pool.windowMs;
      const fresh = snapshot !== null && snapshot.at > cutoff ? snapshot : null;
      const target = local(pool);
      const seen = new Set<string>();
      for (const key of pool.keys) {
        const entries: WindowEntry[] = [];
        if (fresh && !seen.has(key.account)) {
          seen.add(key.account);
          const requests = fresh.requests.get(key.account) ?? 0;
          const tokens = fresh.tokens.get(key.account) ?? 0;
          if (requests > 0 || tokens > 0) entries.push({ ageMs: now - fresh.at, requests, tokens });
        }
        const mine = own.get(key.fingerprint);
        if (mine) entriesOf(mine, Math.max(cutoff, fresh?.at ?? -Infinity), now, entries);
        // The memory store counts synchronously: seeded before the first fallback call.
        if (entries.length > 0) void fallback.add(target, key.fingerprint, entries);
      }
    }
  }

  /** A key's counted requests and tokens after `after`, as entries aged from `now`. */
  function entriesOf(counted: Counted, after: number, now: number, into: WindowEntry[]): WindowEntry[] {
    for (let i = 0; i < counted.requests.size; i++) {
      const at = counted.requests.timeAt(i);
      if (at > after) into.push({ ageMs: now - at, requests: 1, tokens: 0 });
    }
    for (let i = 0; i < counted.tokens.size; i++) {
      const at = counted.tokens.timeAt(i);
      if (at > after) into.push({ ageMs: now - at, requests: 0, tokens: counted.tokens.amountAt(i) });
    }
    return into;
  }

  function countOn(map: Map<string, Counted>, pool: PoolDefinition, fingerprint: string, requests: number, tokens: number): void {
    let counted = map.get(fingerprint);
    if (!counted) map.set(fingerprint, (counted = { requests: new WindowLog(false), tokens: new WindowLog(true) }));
    const now = clock();
    const cutoff = now - pool.windowMs;
    if (requests > 0) {
      counted.requests.trim(cutoff);
      counted.requests.push(now);
    }
    if (tokens > 0) {
      counted.tokens.trim(cutoff);
      counted.tokens.push(now, tokens);
    }
  }

  function recentOf(pool: PoolDefinition): Recent {
    let seen = recent.get(pool.id);
    if (!seen || seen.pool !== pool) {
      recent.delete(pool.id);
      recent.set(pool.id, (seen = { pool, snapshot: null, own: new Map() }));
      if (recent.size > MAX_MIRRORED_POOLS) recent.delete(recent.keys().next().value!);
    }
    return seen;
  }

  /** Redis admitted a request (or took tokens) on a limited pool: remembered for the next outage. */
  function noteOwn(pool: PoolDefinition, fingerprint: string, requests: number, tokens: number): void {
    countOn(recentOf(pool).own, pool, fingerprint, requests, tokens);
  }

  function notePicked(pool: PoolDefinition, picked: PickResult): PickResult {
    if (picked.ok) noteOwn(pool, picked.fingerprint, 1, 0);
    return picked;
  }

  function limited(pool: PoolDefinition): boolean {
    return pool.rpm > 0 || pool.tpm > 0;
  }

  function warnDegraded(cause: unknown, startUp: boolean): void {
    logger?.error(
      { err: cause instanceof Error ? { name: cause.name, message: cause.message } : undefined, divisor },
      startUp
        ? 'REDIS UNAVAILABLE AT START-UP: serving from a local fallback limiter (limits divided by instances); /readyz fails until Redis is back'
        : 'REDIS LOST: serving from a local fallback limiter (limits divided by instances); /readyz fails until Redis is back',
    );
  }

  function startProbing(): void {
    if (probeTimer || closed) return;
    probeTimer = setInterval(() => void probe(), probeMs);
    probeTimer.unref();
  }

  function stopProbing(): void {
    if (probeTimer) clearInterval(probeTimer);
    probeTimer = undefined;
  }

  function probe(): Promise<StoreMode> {
    if (closed || mode === 'redis') return Promise.resolve(mode);
    recovering ??= recover().finally(() => {
      recovering = undefined;
    });
    return recovering;
  }

  async function recover(): Promise<StoreMode> {
    if (redis.status !== 'ready') return mode;
    try {
      await redis.ping();
      await pushJournal();
    } catch {
      return mode; // still away; the next probe tries again
    }
    if (closed) return mode;
    stopProbing();
    startingUp = false;
    divisor = 1;
    logger?.warn('redis back: the key pool uses the shared store again');
    setMode('redis');
    return mode;
  }

  /** Outcomes learned while degraded go to Redis before it serves again, so a rejected key stays out. */
  async function pushJournal(): Promise<void> {
    const now = clock();
    for (const [id, journal] of journals) {
      const { pool } = journal;
      for (const [fingerprint, state] of journal.enabled) {
        if (state === 'rejected') await primary.record(pool, fingerprint, { kind: 'rejected' });
        else await primary.setEnabled(pool, fingerprint, state === 'enabled');
      }
      for (const [fingerprint, { kind, until }] of journal.cooling) {
        if (until > now) await primary.record(pool, fingerprint, { kind, cooldownMs: until - now });
      }
      // What the fallback admitted goes into the shared windows, so instances just back on
      // Redis do not find them empty (issue 24.9). Deleted per key once written: a retry after
      // a failure part-way re-sends only what is left.
      for (const [fingerprint, counted] of journal.admitted) {
        const entries = entriesOf(counted, now - pool.windowMs, now, []);
        if (entries.length > 0) await primary.add(pool, fingerprint, entries);
        journal.admitted.delete(fingerprint);
      }
      journals.delete(id);
    }
  }

  function journalOf(pool: PoolDefinition): Journal {
    let journal = journals.get(pool.id);
    if (!journal) journals.set(pool.id, (journal = { pool, enabled: new Map(), cooling: new Map(), admitted: new Map() }));
    journal.pool = pool;
    return journal;
  }

  /** The pool as this instance's share of it: each limit floor(limit / divisor). */
  function divide(pool: PoolDefinition): { divisor: number; pool: PoolDefinition; closed: boolean } {
    const cached = divided.get(pool);
    if (cached && cached.divisor === divisor) return cached;
    const share = (limit: number) => Math.floor(limit / divisor);
    // A share of 0 serves nothing (closed); the definition keeps a limit of 1 so the windows
    // stay exact logs (0 means unlimited to a store).
    const closed = (pool.rpm > 0 && share(pool.rpm) === 0) || (pool.tpm > 0 && share(pool.tpm) === 0);
    const limit = (value: number) => (value === 0 ? 0 : Math.max(1, share(value)));
    const result = divisor === 1 ? pool : Object.freeze({ ...pool, rpm: limit(pool.rpm), tpm: limit(pool.tpm) });
    const entry = { divisor, pool: result, closed };
    divided.set(pool, entry);
    return entry;
  }

  function local(pool: PoolDefinition): PoolDefinition {
    return divide(pool).pool;
  }

  /** A fallback pick: refused outright when this instance's share is 0, and counted for the push back. */
  async function pickLocally(pool: PoolDefinition, ask: PickAsk | undefined): Promise<PickResult> {
    const share = divide(pool);
    if (share.closed) return pool.keys.length === 0 ? { ok: false, reason: 'no_keys', retryAfterMs: null } : { ok: false, reason: 'busy', retryAfterMs: probeMs };
    // Issue 22: fair share and the wait queue degrade to this instance's own (its users, its
    // waiters, its share of the limits) while Redis is away; a Redis ticket is unknown here, so
    // its waiter joins the local queue as a newcomer.
    const picked = await (ask === undefined ? fallback.pick(share.pool) : fallback.pick(share.pool, ask));
    if (picked.ok && pool.rpm > 0) countOn(journalOf(pool).admitted, pool, picked.fingerprint, 1, 0);
    return picked;
  }

  function noteUse(pool: PoolDefinition): void {
    const seen = inUse.get(pool.id);
    if (seen && seen.pool === pool) {
      seen.lastUsed = clock();
      return;
    }
    inUse.delete(pool.id);
    inUse.set(pool.id, { pool, lastUsed: clock() });
    if (inUse.size > MAX_MIRRORED_POOLS) inUse.delete(inUse.keys().next().value!);
  }

  /** Copy Redis's view of disabled and cooling keys into the fallback, for the next outage. */
  async function mirror(): Promise<void> {
    if (mode !== 'redis' || closed) return;
    const now = clock();
    try {
      const redisNow = await primary.now();
      for (const [id, { pool, lastUsed }] of inUse) {
        if (now - lastUsed > MIRROR_IDLE_MS) {
          inUse.delete(id);
          recent.delete(id);
          continue;
        }
        const readAt = clock();
        const states = await primary.status(pool);
        if (limited(pool)) {
          const requests = new Map<string, number>();
          const tokens = new Map<string, number>();
          for (const state of states) {
            requests.set(state.account, state.requestsThisWindow);
            tokens.set(state.account, state.tokensThisWindow);
          }
          // Timed before the call: admissions racing it count twice, never zero times.
          recentOf(pool).snapshot = { at: readAt, requests, tokens };
        }
        const target = local(pool);
        for (const state of states) {
          if (state.reason === 'rejected') await fallback.record(target, state.fingerprint, { kind: 'rejected' });
          else await fallback.setEnabled(target, state.fingerprint, state.reason !== 'admin_disabled');
          if (state.status === 'cooling' && state.until !== null && (state.reason === 'rate_limited' || state.reason === 'quota_exhausted')) {
            await fallback.record(target, state.fingerprint, { kind: state.reason, cooldownMs: Math.max(0, state.until - redisNow) });
          }
        }
      }
    } catch {
      // A failed mirror is not an outage by itself; the next call on the pool decides.
    }
  }

  function usable(): boolean {
    if (mode === 'redis' && redis.status !== 'ready') degrade(new Error(`redis connection ${redis.status}`));
    return mode === 'redis';
  }

  /** Run on Redis when possible; on failure fall back for this call and the ones after it. */
  async function route<T>(pool: PoolDefinition, onRedis: () => Promise<T>, onFallback: (local: PoolDefinition) => Promise<T>): Promise<T> {
    noteUse(pool);
    if (usable()) {
      try {
        return await onRedis();
      } catch (error) {
        degrade(error);
      }
    }
    return onFallback(local(pool));
  }

  const onClose = () => {
    if (mode === 'redis') degrade(new Error('redis connection closed'));
  };
  const onReady = () => void probe();
  redis.on('close', onClose);
  redis.on('end', onClose);
  redis.on('ready', onReady);
  if (redis.status !== 'ready') {
    startingUp = true;
    // Not connected yet: serve locally from the first request rather than wait. A healthy start
    // is 'ready' within milliseconds and switches over quietly; a failed first connect shouts.
    mode = 'fallback';
    divisor = Math.max(1, Math.floor(options.assumedInstances ?? 1));
    startProbing();
    const announce = (error: Error) => {
      if (startingUp && !closed) warnDegraded(error, true);
    };
    if (redis.status === 'end' || redis.status === 'close') announce(new Error(`redis connection ${redis.status}`));
    else redis.once('error', announce);
  }
  if (mirrorMs > 0) {
    mirrorTimer = setInterval(() => void mirror(), mirrorMs);
    mirrorTimer.unref();
  }

  return {
    pick(pool, ask) {
      const onPrimary = () => (ask === undefined ? primary.pick(pool) : primary.pick(pool, ask));
      return route(
        pool,
        // Unlimited pools (nothing to overrun in an outage) pay nothing for the bookkeeping.
        () => (limited(pool) ? onPrimary().then((picked) => notePicked(pool, picked)) : onPrimary()),
        () => pickLocally(pool, ask),
      );
    },

    leave(pool, ticket) {
      return route(
        pool,
        async () => {
          await primary.leave?.(pool, ticket);
          await fallback.leave?.(local(pool), ticket);
        },
        (p) => fallback.leave?.(p, ticket) ?? Promise.resolve(),
      );
    },

    fairness(pool) {
      const empty = async () => ({ users: [], queue: { length: 0, oldestJoinedAt: null }, now: clock() });
      return route(
        pool,
        () => primary.fairness?.(pool) ?? empty(),
        (p) => fallback.fairness?.(p) ?? empty(),
      );
    },

    record(pool, fingerprint, outcome: Outcome) {
      return route(
        pool,
        async () => {
          await primary.record(pool, fingerprint, outcome);
          if (outcome.kind === 'success' && pool.tpm > 0 && outcome.tokens > 0) noteOwn(pool, fingerprint, 0, outcome.tokens);
          // Our own verdicts reach the fallback at once; other instances' arrive by mirror().
          if (outcome.kind === 'rejected') await fallback.record(local(pool), fingerprint, outcome);
        },
        async (p) => {
          // Issue 22: the fallback ignores learned limits. Its limits are the configured ones
          // divided by the instances, and a provider's stated limit is the whole account's: kept
          // here it would let each of N instances admit all of it. A key without a configured
          // RPM is unlimited during an outage; its 429s still cool it. Redis keeps what was
          // learned, and pacing by it resumes when Redis is back.
          if (outcome.kind !== 'rejected' && outcome.kind !== 'transient' && outcome.limits) {
            const { limits: _ignored, ...rest } = outcome;
            outcome = rest;
          }
          if (outcome.kind === 'success' && pool.tpm > 0 && outcome.tokens > 0) countOn(journalOf(pool).admitted, pool, fingerprint, 0, outcome.tokens);
          if (outcome.kind === 'rejected') journalOf(pool).enabled.set(fingerprint, 'rejected');
          if (outcome.kind === 'rate_limited' || outcome.kind === 'quota_exhausted') {
            const cooling = journalOf(pool).cooling;
            const until = clock() + Math.max(0, outcome.cooldownMs);
            const seen = cooling.get(fingerprint);
            if (!seen || seen.until < until) cooling.set(fingerprint, { kind: outcome.kind, until });
          }
          await fallback.record(p, fingerprint, outcome);
        },
      );
    },

    setEnabled(pool, fingerprint, enabled) {
      return route(
        pool,
        async () => {
          await primary.setEnabled(pool, fingerprint, enabled);
          await fallback.setEnabled(local(pool), fingerprint, enabled);
        },
        async (p) => {
          journalOf(pool).enabled.set(fingerprint, enabled ? 'enabled' : 'disabled');
          await fallback.setEnabled(p, fingerprint, enabled);
        },
      );
    },

    status(pool) {
      return route(
        pool,
        () => primary.status(pool),
        (p) => fallback.status(p),
      );
    },

    async now() {
      if (usable()) {
        try {
          return await primary.now();
        } catch (error) {
          degrade(error);
        }
      }
      return clock();
    },

    async close() {
      closed = true;
      stopProbing();
      if (mirrorTimer) clearInterval(mirrorTimer);
      redis.off('close', onClose);
      redis.off('end', onClose);
      redis.off('ready', onReady);
      await fallback.close();
      await primary.close();
    },

    mode: () => mode,
    isDegraded: () => mode === 'fallback',
    fallbackDivisor: () => (mode === 'fallback' ? divisor : 1),
    onModeChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    probe,
    mirrorNow: mirror,
  };
}
