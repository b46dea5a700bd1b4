import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger';
import { createMemoryStore } from '../pool/stores/memoryStore';
import { systemClock, type Clock, type Outcome, type PoolDefinition, type PoolStore } from '../pool/types';

/**
 * A PoolStore that keeps the gateway serving while Redis is away (issue #7, "Redis faults").
 *
 * - `redis` mode: every call goes to the primary (Redis) store. Meanwhile the disabled keys and
 *   cooldowns of the pools in use are mirrored into the local fallback every few seconds, so a
 *   key rejected before an outage stays out during it.
 * - `fallback` mode: a call that fails on Redis, or any call while the connection is not ready,
 *   runs on the in-process fallback with each limit divided by the number of instances that
 *   were sharing Redis, so N instances together never exceed the limit. Keys rejected, disabled
 *   and cooled meanwhile are journalled.
 * - Recovery: on ioredis 'ready' (and by a probe every `probeMs`, for a Redis that stalls
 *   rather than disconnects) the journal is pushed to Redis and calls go back to it.
 */
export type StoreMode = 'redis' | 'fallback';

export interface ResilientStoreOptions {
  /** The connection the primary store uses (see createGatewayRedis); its events drive the mode. */
  redis: Redis;
  /** createRedisStore({ redis, prefix }) on that same connection. */
  primary: PoolStore;
  /** Default: createMemoryStore({ clock }). */
  fallback?: PoolStore;
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
}

/** Pools whose state is mirrored; BYOK pools come and go, so the set is bounded and ages out. */
const MAX_MIRRORED_POOLS = 1_000;
const MIRROR_IDLE_MS = 120_000;

export function createResilientStore(options: ResilientStoreOptions): ResilientStore {
  const { redis, primary, logger } = options;
  const clock = options.clock ?? systemClock;
  const fallback = options.fallback ?? createMemoryStore({ clock });
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
  const divided = new WeakMap<PoolDefinition, { divisor: number; pool: PoolDefinition }>();
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
    warnDegraded(cause, false);
    setMode('fallback');
    startProbing();
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
      journals.delete(id);
    }
  }

  function journalOf(pool: PoolDefinition): Journal {
    let journal = journals.get(pool.id);
    if (!journal) journals.set(pool.id, (journal = { pool, enabled: new Map(), cooling: new Map() }));
    journal.pool = pool;
    return journal;
  }

  function local(pool: PoolDefinition): PoolDefinition {
    const cached = divided.get(pool);
    if (cached && cached.divisor === divisor) return cached.pool;
    const share = (limit: number) => (limit === 0 ? 0 : Math.max(1, Math.ceil(limit / divisor)));
    const result = divisor === 1 ? pool : Object.freeze({ ...pool, rpm: share(pool.rpm), tpm: share(pool.tpm) });
    divided.set(pool, { divisor, pool: result });
    return result;
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
          continue;
        }
        const states = await primary.status(pool);
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
    pick(pool) {
      return route(
        pool,
        () => primary.pick(pool),
        (p) => fallback.pick(p),
      );
    },

    record(pool, fingerprint, outcome: Outcome) {
      return route(
        pool,
        async () => {
          await primary.record(pool, fingerprint, outcome);
          // Our own verdicts reach the fallback at once; other instances' arrive by mirror().
          if (outcome.kind === 'rejected') await fallback.record(local(pool), fingerprint, outcome);
        },
        async (p) => {
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
