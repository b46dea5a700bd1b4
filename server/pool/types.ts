import type { KeyReason, RotationStrategy } from '../../shared';

/**
 * The key pool's contract with its state store. The pool knows nothing of HTTP or providers:
 * it decides which key serves a request and remembers what happened to each key.
 *
 * A key's secret never reaches a store: state is addressed by fingerprint only.
 */

/** One key as the store sees it. */
export interface PoolKey {
  fingerprint: string;
  /**
   * Provider limits belong to the account, not the key: keys of one account share one
   * RPM/TPM window and cool down together. A key with no account is its own account
   * (account === fingerprint).
   */
  account: string;
}

/** Everything a store needs to decide, passed on every call so config reloads need no sync. */
export interface PoolDefinition {
  /** Unique per pool: `openai`, or `byok:<userId>:openai` for a user's own keys. */
  id: string;
  strategy: RotationStrategy;
  /** Requests per minute per account; 0 = unlimited. */
  rpm: number;
  /** Tokens per minute per account; 0 = unlimited. */
  tpm: number;
  /** Sliding window length; 60 000 ms in production, shorter in tests. */
  windowMs: number;
  keys: readonly PoolKey[];
}

export type PickResult =
  | { ok: true; fingerprint: string }
  /**
   * Nothing can serve now. `retryAfterMs` is when the soonest key frees up (cooldown end or the
   * oldest request leaving the window); null when no key can ever serve without an operator
   * (every key disabled, or the pool is empty). `ticket`: the request waits in the pool's queue
   * (issue 22); pick again with it at `retryAfterMs`, or leave() with it.
   */
  | { ok: false; retryAfterMs: number | null; reason: 'busy' | 'no_keys'; ticket?: string };

/**
 * Who asks and whether they may wait (issue 22). Without it (or with none of its fields) a pick
 * is exactly what it was before: no fair share, no queue, no extra work.
 */
export interface PickAsk {
  /** Fair share applies to a pool with an rpm when a user is named (BYOK pools name none). */
  user?: string;
  /** The user's weight in the share, an integer >= 1 (default 1). */
  weight?: number;
  /** A waiter's ticket, from its previous pick. */
  ticket?: string;
  /** The pool's most waiters; 0 = this request may not wait. */
  queueMax?: number;
  /** How long this request may still wait, ms; 0 = it may not. */
  waitMs?: number;
}

/** What a store knows of a pool's users and queue, for the admin view (issue 22). */
export interface FairnessState {
  /** Users active in the window: served, or asked while the pool was scarce. */
  users: { userId: string; weight: number; requests: number }[];
  queue: { length: number; oldestJoinedAt: number | null };
  now: number;
}

/**
 * One window as an answer stated it (issue 22, learned limits), times relative to the
 * store's now so instances with skewed clocks agree (like cooldownMs).
 */
export interface ObservedWindow {
  /** The most the window allows, as the provider states it. */
  limit?: number;
  /** What the provider said is left, as of `LimitObservation.sinceMs` ago. */
  remaining?: number;
  /** Until the window is whole again, from now. Absent: a window's length from the observation. */
  resetInMs?: number;
}

/** What one answer said about its account's windows. */
export interface LimitObservation {
  /**
   * How long ago the request that brought it was sent. Picks since then are not in the
   * provider's `remaining`; earlier ones are (or were in flight: the window's limit covers those).
   */
  sinceMs: number;
  requests?: ObservedWindow;
  tokens?: ObservedWindow;
}

/** One learned window as stored, on the store's clock. */
export interface LearnedWindow {
  limit: number | null;
  remaining: number | null;
  /** When the observation's request was sent (store clock): picks strictly after it count against `remaining`. */
  observedAt: number;
  /** When `remaining` stops applying (the provider's reset). */
  resetAt: number;
}

export interface LearnedLimits {
  requests: LearnedWindow | null;
  tokens: LearnedWindow | null;
}

/** What happened to a request, recorded against the key that served it. */
export type Outcome =
  /** Served. Tokens count toward the account's TPM window. */
  | { kind: 'success'; tokens: number; limits?: LimitObservation }
  /**
   * 429 or equivalent: the account cools for `cooldownMs` from now. Relative, so the store
   * applies it on its own clock (Redis TIME) and instances with skewed clocks agree.
   */
  | { kind: 'rate_limited'; cooldownMs: number; limits?: LimitObservation }
  /** Out of money / quota: the account cools for long. */
  | { kind: 'quota_exhausted'; cooldownMs: number; limits?: LimitObservation }
  /** The provider rejected the key (401/403): it stays out until re-enabled. */
  | { kind: 'rejected' }
  /** 5xx, timeout, network: not the key's fault; nothing changes but the count. */
  | { kind: 'transient' };

/** Raw per-key state as stored; the pool turns it into the public KeyStatus. */
export interface KeyState {
  fingerprint: string;
  account: string;
  status: 'ok' | 'cooling' | 'disabled';
  reason: KeyReason | null;
  /** Epoch ms when cooling ends, else null. */
  until: number | null;
  /** Requests of the key's account in the current sliding window. */
  requestsThisWindow: number;
  /** Tokens of the key's account in the current sliding window. */
  tokensThisWindow: number;
  /** What the key's account's provider stated (issue 22); null when nothing was learned. */
  learned: LearnedLimits | null;
}

/**
 * The limit in force for an account (issue 22): the configured one (0 = none) unless the
 * provider stated a lower one, which corrects it; the stated one when none is configured.
 */
export function effectiveLimit(configured: number, learned: number | null | undefined): number {
  if (learned === null || learned === undefined) return configured;
  return configured > 0 && configured <= learned ? configured : learned;
}

export interface PoolStore {
  /**
   * In one atomic step: pick a key by the pool's strategy, skipping disabled keys, cooling
   * accounts and accounts without RPM/TPM capacity, and count the request against the
   * account's sliding window; or refuse with when to retry.
   */
  pick(pool: PoolDefinition, ask?: PickAsk): Promise<PickResult>;
  /** A waiter gives up (deadline, client gone): its ticket leaves the queue at once (issue 22). */
  leave?(pool: PoolDefinition, ticket: string): Promise<void>;
  /** Users' use and the queue, for the admin view (issue 22). */
  fairness?(pool: PoolDefinition): Promise<FairnessState>;
  /** Record the outcome of a request served by `fingerprint`. */
  record(pool: PoolDefinition, fingerprint: string, outcome: Outcome): Promise<void>;
  /** Admin switch: a disabled key stays out of rotation until enabled (clears `rejected` too). */
  setEnabled(pool: PoolDefinition, fingerprint: string, enabled: boolean): Promise<void>;
  /** State of every key of the pool, in the pool's key order. */
  status(pool: PoolDefinition): Promise<KeyState[]>;
  /** The store's clock (Redis TIME for the Redis store), epoch ms. */
  now(): Promise<number>;
  close(): Promise<void>;
}

/**
 * Requests and tokens an account served that a store did not count itself, `ageMs` before the
 * store's now: what the outage fallback admitted, written back into Redis when it returns, and
 * what was last seen in Redis, carried into the fallback when it goes (issue 24.9).
 */
export interface WindowEntry {
  ageMs: number;
  requests: number;
  tokens: number;
}

/** A PoolStore that can add such entries to an account's sliding windows. */
export interface CountingPoolStore extends PoolStore {
  /**
   * Adds the entries to the windows of `fingerprint`'s account: exact logs for a limited rpm /
   * tpm, the estimate for an unlimited one. Entries older than the window count for nothing.
   */
  add(pool: PoolDefinition, fingerprint: string, entries: readonly WindowEntry[]): Promise<void>;
}

/** Time source, injectable so tests control it instead of sleeping. */
export type Clock = () => number;
export const systemClock: Clock = () => Date.now();
