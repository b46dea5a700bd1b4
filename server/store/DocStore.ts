/**
 * A small key-value document store for business data: config, the model list, BYOK records
 * (ciphertext only), usage counters and per-user limits. Two implementations share this
 * contract (test/store/docStoreContract.test.ts runs against both):
 *  - memoryDocStore: one gateway instance, nothing survives a restart;
 *  - redisDocStore: every instance sharing one Redis sees the same data, keys under `<prefix>:`.
 *
 * Every write passes through the secret guard (secretGuard.ts). Values are JSON; a `Sealed`
 * envelope is stored as its JSON form. Reads return `unknown`: callers parse with zod.
 */

export type Clock = () => number;
export const systemClock: Clock = () => Date.now();

/** One write of a `transaction`. */
export type DocWrite =
  | { op: 'setJson'; key: string; value: unknown }
  | { op: 'mapSet'; key: string; field: string; value: unknown }
  | { op: 'mapDelete'; key: string; field: string };

export type WindowHit = { allowed: true; count: number } | { allowed: false; count: number; retryAfterMs: number };

/** One counter map's increments, as `increment` takes them. */
export interface CounterWrite {
  key: string;
  deltas: Readonly<Record<string, number>>;
  /** (Re)sets the map's expiry. */
  ttlMs?: number;
}

/** A hold placed by `reserve`: its entry in the holds set `key`. */
export interface HoldRef {
  key: string;
  member: string;
}

export interface ReserveRequest {
  /** Where what is spent is counted: a field of a counter map. */
  counterKey: string;
  field: string;
  /** Spent but not yet in the store (the caller's unwritten records); added to the field. */
  extra: number;
  /** Admitted only while spent + extra + live holds stay below this. */
  limit: number;
  /** The set of holds against this limit. */
  holdsKey: string;
  /** The hold to place when admitted; without it, reserve only checks. */
  hold?: { id: string; amount: number; expiresAtMs: number };
  nowMs: number;
}

export interface ReserveResult {
  ok: boolean;
  /** The field's value plus `extra`. */
  spent: number;
  /** Live holds before this one. */
  held: number;
  /** Placed (ok and a hold was asked for). */
  hold?: HoldRef;
}

/** Applies a batch at most once (see DocStore.applyOnce). */
export interface OnceBatch {
  /** The batch's marker key: present = applied. */
  markerKey: string;
  markerTtlMs: number;
  writes: readonly CounterWrite[];
  /** Holds to remove in the same step. */
  releases?: readonly HoldRef[];
  /** A marker to delete in the same step (an earlier batch confirmed applied, never retried). */
  forget?: string;
}

export interface DocStore {
  /** 'memory' or 'redis': for the health endpoint and logs. */
  readonly kind: 'memory' | 'redis';

  getJson(key: string): Promise<unknown>;
  setJson(key: string, value: unknown): Promise<void>;
  /** Writes only when the key is absent; true when it wrote. Used to seed defaults once. */
  setJsonIfAbsent(key: string, value: unknown): Promise<boolean>;
  delete(key: string): Promise<void>;

  /** Hash-like maps of JSON values, e.g. a user's BYOK records keyed by record id. */
  mapGet(key: string, field: string): Promise<unknown>;
  mapGetAll(key: string): Promise<Map<string, unknown>>;
  mapSet(key: string, field: string, value: unknown): Promise<void>;
  /** Writes only when the field exists; true when it wrote (a concurrent delete wins). */
  mapSetIfPresent(key: string, field: string, value: unknown): Promise<boolean>;
  mapDelete(key: string, field: string): Promise<boolean>;
  mapSize(key: string): Promise<number>;

  /**
   * Several writes as one: all of them or none, and no reader on any instance sees some without
   * the others (Redis: one Lua script; in process: one synchronous step). The secret guard
   * checks every value and field name before anything is written, so a refused one leaves the
   * store as it was. With `ifAbsent`, nothing is written when that key exists; the answer says
   * whether the writes happened.
   */
  transaction(writes: readonly DocWrite[], options?: { ifAbsent?: string }): Promise<boolean>;

  /**
   * Adds to numeric fields of a counter map, all together or not at all (Redis: one MULTI of
   * HINCRBY for integers, HINCRBYFLOAT otherwise). `ttlMs` (re)sets the map's expiry.
   */
  increment(key: string, deltas: Readonly<Record<string, number>>, ttlMs?: number): Promise<void>;
  /**
   * Applies a batch of counter increments and hold releases all together, at most once per
   * `markerKey`: the marker is checked and set in the same atomic step, so a retry of a batch
   * whose reply was lost (Redis applied it) changes nothing. True when it applied, false when
   * the marker was already there. Integer deltas only (usage counters are nano-dollars).
   */
  applyOnce(batch: OnceBatch): Promise<boolean>;

  /**
   * Check-and-reserve against a limit in one atomic step, across instances: admitted while the
   * counted spend plus the live holds of `holdsKey` is below `limit`, and then (with `hold`) a
   * hold of `hold.amount` is placed that counts until it is released (applyOnce) or expires at
   * `hold.expiresAtMs` (an instance that dies mid-request leaks nothing for good).
   */
  reserve(request: ReserveRequest): Promise<ReserveResult>;

  /** Counter fields; absent fields are omitted. `fields` limits the read. */
  counters(key: string, fields?: readonly string[]): Promise<Record<string, number>>;

  /**
   * One hit on a sliding-window log (`limit` hits per `windowMs`), atomic across instances:
   * counted only when allowed; when refused, `retryAfterMs` is when the oldest hit leaves.
   */
  windowHit(key: string, nowMs: number, windowMs: number, limit: number): Promise<WindowHit>;

  /** Tells every instance (this one included) that something under `channel` changed. */
  publish(channel: string, message: string): Promise<void>;
  /** Returns an unsubscribe function. Delivery is best effort (pub/sub): read-through stays the truth. */
  subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>>;

  /**
   * Every key that begins with `prefix`, for maintenance (the encryption key rotation), never on
   * a request's path: Redis walks its whole key space (SCAN) to answer.
   */
  keysWithPrefix(prefix: string): Promise<string[]>;

  close(): Promise<void>;
}
