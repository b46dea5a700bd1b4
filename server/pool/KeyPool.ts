import { inspect } from 'node:util';
import { z } from 'zod';
import {
  providerIdSchema,
  ROTATION_STRATEGIES,
  type KeyStatus,
  type LearnedWindowStatus,
  type PoolStatus,
  type ProviderId,
  type ProviderPoolStatus,
  type RotationStrategy,
} from '../../shared';
import type { GatewayEnv } from '../config/env';
import type { Logger } from '../observability/logger';
import { fingerprintOf, maskOf } from './keyIdentity';
import { pickWaiting, systemTimer, type WaitOutcome, type WaitTimer } from './pickWaiting';
import { poolFairnessOf } from './poolFairnessOf';
import { effectiveLimit, type KeyState, type LearnedWindow, type LimitObservation, type ObservedWindow, type Outcome, type PickAsk, type PoolDefinition, type PoolStore } from './types';

/**
 * The key pool as the rest of the gateway sees it. Secrets live here, in process memory only,
 * keyed by fingerprint; the store (memory or Redis) decides and remembers by fingerprint alone.
 */

export interface PoolKeyInput {
  secret: string;
  account: string | null;
}

export interface PoolConfigInput {
  id: string;
  provider: ProviderId;
  strategy: RotationStrategy;
  rpm: number;
  tpm: number;
  keys: PoolKeyInput[];
  /** Issue 22: most requests waiting for capacity (`<P>_QUEUE_MAX`). Default 0: none wait. */
  queueMax?: number;
  /** Issue 22: longest wait for capacity, ms (`<P>_QUEUE_MAX_WAIT_MS`). Default 0: none wait. */
  queueMaxWaitMs?: number;
}

/**
 * Who asks (issue 22): a named user on a pool with an rpm gets at most its weighted fair share
 * while the pool is scarce; with a wait allowed, a request that finds every key busy waits in
 * the pool's queue instead of failing at once.
 */
export interface AcquireOptions {
  userId?: string;
  /** The user's weight (their limits' `weight`); default 1. */
  weight?: number;
  /** This request's own deadline for waiting, ms, capped by the pool's; default the pool's. */
  maxWaitMs?: number;
  /** Aborts a wait (the client went away): the request leaves the queue at once. */
  signal?: AbortSignal;
}

export interface KeyLease {
  poolId: string;
  provider: ProviderId;
  fingerprint: string;
  mask: string;
  secret: string;
}

export type AcquireResult =
  | { ok: true; lease: KeyLease }
  | { ok: false; reason: 'busy' | 'no_keys'; retryAfterMs: number | null };

/**
 * What the answer stated of the account's windows (issue 22, learned limits), relative to the
 * report: `sinceMs` since the request was sent, `resetInMs` from now.
 */
export type { LimitObservation };

export type LeaseOutcome =
  | { kind: 'success'; tokens: number; limits?: LimitObservation }
  | { kind: 'rate_limited'; retryAfterMs?: number; limits?: LimitObservation }
  | { kind: 'quota_exhausted'; retryAfterMs?: number; limits?: LimitObservation }
  | { kind: 'rejected' }
  | { kind: 'transient' };

export interface KeyPoolOptions {
  /** Sliding window of the RPM/TPM limits. Default 60 000. */
  windowMs?: number;
  /** Cooldown after a 429 that names no retry time. Default 30 s. */
  defaultCooldownMs?: number;
  /** Cooldown after quota exhaustion that names no retry time. Default 1 hour. */
  quotaCooldownMs?: number;
  /** Key state changes (rejected, cooling) are logged by fingerprint and mask. Default: silent. */
  logger?: Logger;
  /** Issue 22: a waiter's timer (tests pass a controlled one) and clock. */
  timer?: WaitTimer;
  clock?: () => number;
  /** Issue 22: once per request that waited in a queue, when it leaves it (the wait-time metric). */
  onWait?: (event: { poolId: string; provider: ProviderId; waitedMs: number; outcome: WaitOutcome }) => void;
}

/** Invalid pool configuration. Names fields, never values: a value may be a key. */
export class PoolConfigError extends Error {
  override readonly name = 'PoolConfigError';
  constructor(readonly problems: readonly { path: string; problem: string }[]) {
    super('Invalid key pool configuration:\n' + problems.map((p) => `  - ${p.path}: ${p.problem}`).join('\n'));
  }
}

const poolConfigSchema = z.object({
  id: z.string().min(1).max(200),
  provider: providerIdSchema,
  strategy: z.enum(ROTATION_STRATEGIES),
  rpm: z.number().int().min(0),
  tpm: z.number().int().min(0),
  keys: z.array(z.object({ secret: z.string().min(1), account: z.string().min(1).max(200).nullable() })),
  queueMax: z.number().int().min(0).max(100_000).optional(),
  queueMaxWaitMs: z.number().int().min(0).max(600_000).optional(),
});

/** Weights are whole numbers in this range (shared/usage.ts userLimitsSchema). */
const MAX_WEIGHT = 1_000;

/** Cooldowns the provider names are trusted, within reason. */
const MAX_COOLDOWN_MS = 24 * 3_600_000;
/** Ad-hoc (BYOK) pool definitions remembered for report(); they hold no secrets. */
const MAX_ADHOC_POOLS = 10_000;
/** Accounts whose corrected limit was logged (once per account and change), remembered per instance. */
const MAX_CORRECTIONS_LOGGED = 10_000;

interface RegisteredPool {
  config: PoolConfigInput;
  definition: PoolDefinition;
  /** Stable per pool shape, so stores can cache per definition object. */
  signature: string;
  keys: Map<string, { secret: string; mask: string; account: string | null }>;
}

export class KeyPool {
  private readonly windowMs: number;
  private readonly defaultCooldownMs: number;
  private readonly quotaCooldownMs: number;
  private readonly logger: Logger | undefined;
  private readonly timer: WaitTimer;
  private readonly clock: () => number;
  private readonly onWait: KeyPoolOptions['onWait'];
  private registered = new Map<string, RegisteredPool>();
  /** Definitions (no secrets) of ad-hoc pools by id, for report() and setKeyEnabled(). */
  private readonly adhoc = new Map<string, { signature: string; definition: PoolDefinition; masks: Map<string, string> }>();
  /** Issue 22: per pool, account and window, the provider limit last logged as correcting the configured one. */
  private readonly corrections = new Map<string, number>();

  constructor(
    private readonly store: PoolStore,
    options: KeyPoolOptions = {},
  ) {
    this.windowMs = options.windowMs ?? 60_000;
    this.defaultCooldownMs = options.defaultCooldownMs ?? 30_000;
    this.quotaCooldownMs = options.quotaCooldownMs ?? 3_600_000;
    this.logger = options.logger;
    this.timer = options.timer ?? systemTimer;
    this.clock = options.clock ?? Date.now;
    this.onWait = options.onWait;
  }

  /** Replace the registered (environment) pools. Key state lives in the store, by fingerprint. */
  setPools(configs: PoolConfigInput[]): void {
    const next = new Map<string, RegisteredPool>();
    configs.forEach((input, i) => {
      const pool = this.build(input, `pools[${i}]`);
      if (next.has(pool.config.id)) throw new PoolConfigError([{ path: `pools[${i}].id`, problem: 'duplicate pool id' }]);
      // Keep the same definition object when nothing changed, so store caches stay warm.
      const previous = this.registered.get(pool.config.id);
      next.set(pool.config.id, previous && previous.signature === pool.signature ? { ...pool, definition: previous.definition } : pool);
    });
    this.registered = next;
  }

  has(poolId: string): boolean {
    return this.registered.has(poolId);
  }

  async acquire(poolId: string, options?: AcquireOptions): Promise<AcquireResult> {
    const pool = this.registered.get(poolId);
    if (!pool) return { ok: false, reason: 'no_keys', retryAfterMs: null };
    if (options === undefined) return this.pickFrom(pool);
    return this.pickFrom(pool, options);
  }

  /** Acquire from a pool that is not registered, such as a user's own (BYOK) keys. */
  async acquireFrom(config: PoolConfigInput): Promise<AcquireResult> {
    const built = this.build(config, 'pool');
    let known = this.adhoc.get(built.config.id);
    if (!known || known.signature !== built.signature) {
      const masks = new Map([...built.keys].map(([fingerprint, key]) => [fingerprint, key.mask]));
      known = { signature: built.signature, definition: built.definition, masks };
      this.adhoc.delete(built.config.id);
      this.adhoc.set(built.config.id, known);
      if (this.adhoc.size > MAX_ADHOC_POOLS) this.adhoc.delete(this.adhoc.keys().next().value!);
    }
    return this.pickFrom({ ...built, definition: known.definition });
  }

  async report(lease: KeyLease, outcome: LeaseOutcome): Promise<void> {
    const definition = this.definitionOf(lease.poolId);
    if (!definition) return;
    const recorded = this.toOutcome(outcome);
    if (recorded.kind !== 'rejected' && recorded.kind !== 'transient' && recorded.limits) this.noteCorrection(definition, lease, recorded.limits);
    await this.store.record(definition, lease.fingerprint, recorded);
    if (recorded.kind === 'rejected') {
      this.logger?.warn({ pool: lease.poolId, fingerprint: lease.fingerprint, mask: lease.mask }, 'key rejected by provider; disabled until re-enabled');
    } else if (recorded.kind === 'rate_limited' || recorded.kind === 'quota_exhausted') {
      this.logger?.info(
        { pool: lease.poolId, fingerprint: lease.fingerprint, mask: lease.mask, reason: recorded.kind, cooldownMs: recorded.cooldownMs },
        'key account cooling',
      );
    }
  }

  /** Admin switch; false when the pool has no such key. */
  async setKeyEnabled(poolId: string, fingerprint: string, enabled: boolean): Promise<boolean> {
    const definition = this.definitionOf(poolId);
    if (!definition || !definition.keys.some((k) => k.fingerprint === fingerprint)) return false;
    await this.store.setEnabled(definition, fingerprint, enabled);
    return true;
  }

  /** Status of the registered pools that have keys. */
  async status(): Promise<PoolStatus> {
    const pools = [...this.registered.values()].filter((p) => p.definition.keys.length > 0);
    const [at, providers] = await Promise.all([this.store.now(), Promise.all(pools.map((p) => this.describe(p.config, p)))]);
    return { at, windowMs: this.windowMs, providers };
  }

  async statusOf(config: PoolConfigInput): Promise<ProviderPoolStatus> {
    return this.describe(config, this.build(config, 'pool'));
  }

  private async pickFrom(pool: RegisteredPool, options?: AcquireOptions): Promise<AcquireResult> {
    const picked = options === undefined ? await this.store.pick(pool.definition) : await this.pickAsking(pool, options);
    if (!picked.ok) return picked;
    const key = pool.keys.get(picked.fingerprint);
    // The store only knows fingerprints we gave it; a miss means the config changed under us.
    if (!key) return { ok: false, reason: 'busy', retryAfterMs: 1 };
    return { ok: true, lease: leaseOf(pool.config.id, pool.config.provider, picked.fingerprint, key.mask, key.secret) };
  }

  /**
   * Issue 22: the pick with who asks and how long it may wait. A pool with no rpm has no share
   * to compute, and one without a queue no wait: then it is the plain pick, at its plain cost.
   */
  private pickAsking(pool: RegisteredPool, options: AcquireOptions) {
    const { config, definition } = pool;
    const user = config.rpm > 0 && options.userId ? options.userId : undefined;
    const poolWait = config.queueMax && config.queueMax > 0 ? (config.queueMaxWaitMs ?? 0) : 0;
    const asked = options.maxWaitMs;
    const waitMs = Math.max(0, Math.floor(Math.min(poolWait, asked !== undefined && Number.isFinite(asked) ? asked : poolWait)));
    if (user === undefined && waitMs === 0) return this.store.pick(definition);
    const ask: PickAsk = {};
    if (user !== undefined) {
      ask.user = user;
      ask.weight = Math.min(MAX_WEIGHT, Math.max(1, Math.round(options.weight ?? 1)));
    }
    if (waitMs === 0) return this.store.pick(definition, ask);
    ask.queueMax = config.queueMax!;
    const { onWait } = this;
    return pickWaiting({
      store: this.store,
      pool: definition,
      ask,
      waitMs,
      signal: options.signal,
      clock: this.clock,
      timer: this.timer,
      ...(onWait ? { onWait: (waitedMs: number, outcome: WaitOutcome) => onWait({ poolId: config.id, provider: config.provider, waitedMs, outcome }) } : {}),
    });
  }

  private definitionOf(poolId: string): PoolDefinition | undefined {
    return this.registered.get(poolId)?.definition ?? this.adhoc.get(poolId)?.definition;
  }

  /**
   * A configured limit above the provider's stated one is corrected by the store (the lower one
   * is in force); said here once per account and change, not per request (issue 22).
   */
  private noteCorrection(definition: PoolDefinition, lease: KeyLease, seen: LimitObservation): void {
    const check = (window: 'rpm' | 'tpm', configured: number, stated: number | undefined) => {
      if (stated === undefined || configured === 0 || stated >= configured) return;
      const account = definition.keys.find((k) => k.fingerprint === lease.fingerprint)?.account ?? lease.fingerprint;
      const slot = `${definition.id}\u0000${account}\u0000${window}`;
      if (this.corrections.get(slot) === stated) return;
      if (this.corrections.size >= MAX_CORRECTIONS_LOGGED) this.corrections.clear();
      this.corrections.set(slot, stated);
      this.logger?.warn(
        { pool: lease.poolId, fingerprint: lease.fingerprint, mask: lease.mask, window, configured, stated },
        `configured ${window} is above the provider's stated limit: the provider's is in force (learned)`,
      );
    };
    check('rpm', definition.rpm, seen.requests?.limit);
    check('tpm', definition.tpm, seen.tokens?.limit);
  }

  private toOutcome(outcome: LeaseOutcome): Outcome {
    switch (outcome.kind) {
      case 'success': {
        const tokens = Number.isFinite(outcome.tokens) ? Math.max(0, Math.round(outcome.tokens)) : 0;
        const limits = observationOf(outcome.limits);
        return limits ? { kind: 'success', tokens, limits } : { kind: 'success', tokens };
      }
      case 'rate_limited':
      case 'quota_exhausted': {
        const cooldownMs = cooldown(outcome.retryAfterMs, outcome.kind === 'rate_limited' ? this.defaultCooldownMs : this.quotaCooldownMs);
        const limits = observationOf(outcome.limits);
        return limits ? { kind: outcome.kind, cooldownMs, limits } : { kind: outcome.kind, cooldownMs };
      }
      case 'rejected':
        return { kind: 'rejected' };
      default:
        return { kind: 'transient' };
    }
  }

  private build(input: PoolConfigInput, path: string): RegisteredPool {
    const parsed = poolConfigSchema.safeParse(input);
    if (!parsed.success) {
      throw new PoolConfigError(
        parsed.error.issues.map((issue) => ({ path: [path, ...issue.path.map(String)].join('.'), problem: issue.message })),
      );
    }
    const config = parsed.data;
    const keys = new Map<string, { secret: string; mask: string; account: string | null }>();
    const poolKeys: { fingerprint: string; account: string }[] = [];
    for (const { secret, account } of config.keys) {
      const fingerprint = fingerprintOf(secret);
      if (keys.has(fingerprint)) continue; // the same key twice is one key
      keys.set(fingerprint, { secret, mask: maskOf(secret), account });
      poolKeys.push({ fingerprint, account: account ?? fingerprint });
    }
    const definition: PoolDefinition = Object.freeze({
      id: config.id,
      strategy: config.strategy,
      rpm: config.rpm,
      tpm: config.tpm,
      windowMs: this.windowMs,
      keys: Object.freeze(poolKeys.map((k) => Object.freeze(k))),
    });
    const signature = JSON.stringify([config.strategy, config.rpm, config.tpm, poolKeys]);
    return { config, definition, signature, keys };
  }

  private async describe(config: PoolConfigInput, pool: RegisteredPool): Promise<ProviderPoolStatus> {
    const [states, now] = await Promise.all([this.store.status(pool.definition), this.store.now()]);
    const keys = states.map((state) => toKeyStatus(state, pool, config, now));
    const accounts = new Map<string, { requests: number; rpm: number; usable: boolean }>();
    for (const state of states) {
      const seen = accounts.get(state.account);
      const rpm = effectiveLimit(config.rpm, state.learned?.requests?.limit);
      accounts.set(state.account, { requests: state.requestsThisWindow, rpm, usable: (seen?.usable ?? false) || state.status === 'ok' });
    }
    let requestsThisWindow = 0;
    let capacityRpm = 0;
    for (const account of accounts.values()) {
      requestsThisWindow += account.requests;
      if (account.usable && account.rpm > 0) capacityRpm += Math.max(0, account.rpm - account.requests);
    }
    // Issue 22: users' shares and the queue, where the pool has either.
    const fairness = this.store.fairness && (config.rpm > 0 || (config.queueMax ?? 0) > 0 || states.some((s) => s.learned?.requests?.limit != null)) ? poolFairnessOf(await this.store.fairness(pool.definition), config, states) : {};
    return {
      ...fairness,
      provider: config.provider,
      strategy: config.strategy,
      keys,
      totals: {
        keys: keys.length,
        ok: keys.filter((k) => k.status === 'ok').length,
        cooling: keys.filter((k) => k.status === 'cooling').length,
        disabled: keys.filter((k) => k.status === 'disabled').length,
        requestsThisWindow,
        capacityRpm,
      },
    };
  }
}

/** One pool per provider that has keys, named after the provider. */
export function poolConfigsFromEnv(env: GatewayEnv): PoolConfigInput[] {
  return env.providers
    .filter((p) => p.keys.length > 0)
    .map((p) => ({
      id: p.provider,
      provider: p.provider,
      strategy: p.strategy,
      rpm: p.rpmPerKey,
      tpm: p.tpmPerKey,
      keys: p.keys.map((k) => ({ secret: k.secret, account: k.account })),
      // Issue 22: only a pool whose requests may wait has a queue.
      ...(p.queueMaxWaitMs > 0 ? { queueMax: p.queueMax, queueMaxWaitMs: p.queueMaxWaitMs } : {}),
    }));
}

function cooldown(given: number | undefined, fallback: number): number {
  const ms = given !== undefined && Number.isFinite(given) && given > 0 ? given : fallback;
  return Math.min(MAX_COOLDOWN_MS, Math.max(1, Math.ceil(ms)));
}

function toKeyStatus(state: KeyState, pool: RegisteredPool, config: PoolConfigInput, now: number): KeyStatus {
  const key = pool.keys.get(state.fingerprint);
  // Issue 22: the limits in force, the provider's when none is configured or it states a lower one.
  const rpm = effectiveLimit(config.rpm, state.learned?.requests?.limit);
  const tpm = effectiveLimit(config.tpm, state.learned?.tokens?.limit);
  const used = Math.max(rpm > 0 ? state.requestsThisWindow / rpm : 0, tpm > 0 ? state.tokensThisWindow / tpm : 0);
  return {
    fingerprint: state.fingerprint,
    mask: key?.mask ?? '…',
    account: key?.account ?? null,
    status: state.status,
    reason: state.reason,
    until: state.until,
    requestsThisWindow: state.requestsThisWindow,
    rpmLimit: rpm,
    tokensThisWindow: state.tokensThisWindow,
    tpmLimit: tpm,
    percentUsed: Math.min(100, Math.round(used * 10_000) / 100),
    rpmSource: rpm !== config.rpm ? 'learned' : 'configured',
    tpmSource: tpm !== config.tpm ? 'learned' : 'configured',
    learned: state.learned ? { requests: windowStatus(state.learned.requests, now), tokens: windowStatus(state.learned.tokens, now) } : null,
  };
}

/** A learned window for the status: what is left only while it applies (before the reset). */
function windowStatus(window: LearnedWindow | null, now: number): LearnedWindowStatus | null {
  if (!window) return null;
  const live = now < window.resetAt && window.remaining !== null;
  return { limit: window.limit, remaining: live ? window.remaining : null, resetAt: live ? window.resetAt : null, observedAt: window.observedAt };
}

/** A lease's observation, checked: whole non-negative numbers only, a limit positive; nothing said is nothing kept. */
function observationOf(seen: LimitObservation | undefined): LimitObservation | undefined {
  if (!seen) return undefined;
  const whole = (n: number | undefined, min: number) => (n !== undefined && Number.isFinite(n) && n >= min ? Math.round(n) : undefined);
  const window = (w: ObservedWindow | undefined): ObservedWindow | undefined => {
    if (!w) return undefined;
    const limit = whole(w.limit, 1);
    const remaining = whole(w.remaining, 0);
    if (limit === undefined && remaining === undefined) return undefined;
    const resetInMs = whole(w.resetInMs, 0);
    return { ...(limit !== undefined ? { limit } : {}), ...(remaining !== undefined ? { remaining } : {}), ...(resetInMs !== undefined ? { resetInMs: Math.min(resetInMs, MAX_COOLDOWN_MS) } : {}) };
  };
  const requests = window(seen.requests);
  const tokens = window(seen.tokens);
  if (!requests && !tokens) return undefined;
  return { sinceMs: whole(seen.sinceMs, 0) ?? 0, ...(requests ? { requests } : {}), ...(tokens ? { tokens } : {}) };
}

/**
 * A lease carries the secret to the adapter that sends it. JSON.stringify and util.inspect
 * (console.log, error dumps) show it without the secret, so a careless log line stays safe.
 * The guards live on the prototype: a lease costs one plain allocation.
 */
class Lease implements KeyLease {
  constructor(
    readonly poolId: string,
    readonly provider: ProviderId,
    readonly fingerprint: string,
    readonly mask: string,
    readonly secret: string,
  ) {}

  toJSON() {
    return { poolId: this.poolId, provider: this.provider, fingerprint: this.fingerprint, mask: this.mask, secret: '[redacted]' };
  }

  [inspect.custom]() {
    return this.toJSON();
  }
}

function leaseOf(poolId: string, provider: ProviderId, fingerprint: string, mask: string, secret: string): KeyLease {
  return new Lease(poolId, provider, fingerprint, mask, secret);
}
