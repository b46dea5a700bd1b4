import { randomUUID } from 'node:crypto';
import type { Logger } from '../observability/logger';
import { systemClock, type Clock, type CounterWrite, type DocStore, type HoldRef } from '../store/DocStore';
import { NotifiedCache } from '../store/NotifiedCache';
import { decodeId, encodeId } from '../store/storeIds';
import {
  decodeUsageCursor,
  encodeUsageCursor,
  usagePageSchema,
  usageRangeSchema,
  userLimitsSchema,
  type UsageDay,
  type UsagePage,
  type UsageRange,
  type UserLimits,
  type UserUsage,
  type UserUsagePage,
} from '../../shared/usage';
import { commitUsageBatch, dailySpentNano, pruneUsageBatches, readUserLimits, usageByUser, usageOfUser, writeUserLimits, type UsagePool, type UsageRow } from './pgUsage';

/**
 * Per-user, per-UTC-day usage (requests, tokens, cost) and the per-user limits admins set.
 *
 * Store layout: `usage:day:<YYYY-MM-DD>` is one counter map per day with fields
 * `r:<user>` requests, `i:<user>` input tokens, `o:<user>` output tokens, `c:<user>` cost in
 * nano-USD (integers: sums stay exact, HINCRBY not HINCRBYFLOAT); the field names come from
 * usageField() alone. `usage:limits` maps user -> limits; `usage:rpm:<user>` is the user's
 * sliding request window, shared by every instance on the same Redis. `<user>` is always the
 * id as storeIds.encodeId stores it (a hex or key-shaped id encoded: issue 24.10).
 *
 * Budgets (issue 24.3): a user with a daily budget is admitted by a reservation, not a read.
 * `admit` checks spent + the holds in flight against the budget and places a hold of the
 * request's most possible cost in one atomic step (DocStore.reserve), in
 * `usage:holds:<date>:<user>`, shared by every instance. The hold counts until the answer's
 * record is written (its release rides in the same batch as the record, so the store never
 * counts neither) or until it expires (`holdTtlMs`: an instance that dies mid-answer blocks
 * nothing for good). So the spend of parallel requests stays within one request's cost of the
 * budget. Users without a budget reserve nothing (no store round trip).
 *
 * Outbox: records are merged per user-day and written in batches (write-behind, the periodic
 * flush, or record()). Each batch has an id, and the store applies it at most once
 * (DocStore.applyOnce with the marker `usage:batch:<id>`): a batch whose reply was lost (Redis
 * stalled after applying it) is retried with the same id and counted once (issue 24.8). While a
 * batch is unconfirmed it is retried as it is; new records wait in the open part of the outbox.
 * A crashed process loses its outbox.
 *
 * With PostgreSQL (`pool`, DATABASE_URL: issue 23) the database is the record and Redis keeps
 * only the hot state:
 *  - A batch is committed to PostgreSQL in one transaction that first inserts its id into
 *    `usage_batches` (already there: applied, skipped), then its `usage_events` and the
 *    `usage_daily` rollup (pgUsage.ts). It leaves the outbox only once that committed; while
 *    PostgreSQL is away batches wait in the outbox (bounded by maxOutboxEntries) and are retried
 *    under the same id, so a lost COMMIT reply counts once. The outage is logged once, at error,
 *    and once when it ends.
 *  - Reads (mine, byUser with pagination) and limits (`user_limits`) come from SQL; the limits
 *    cache is still invalidated across instances through the store's pub/sub.
 *  - Budgets are still reserved in Redis (one round trip per budgeted request, as before: no
 *    PostgreSQL on the request path). The reservation counts `usage:spent:<date>`, a mirror of
 *    each user's cost of the day that the ledger keeps in step: after a batch commits in
 *    PostgreSQL its cost is added to the mirror and its holds released, in one applyOnce (same
 *    batch id). A mirror field holds MIRROR_BASE + the day's cost once it has been seeded from
 *    PostgreSQL; a field below MIRROR_BASE is a mirror that never had the database's part (a new
 *    day, a budget set mid-day) or lost it (a Redis flush or restart), and the admission that
 *    finds it reads the day's cost from `usage_daily`, adds it (once, under a seed marker, across
 *    instances), and reserves again: once per user-day, not per request. A record committed but
 *    not yet mirrored (Redis away) still counts on this instance, as the outbox does.
 */

const NANO = 1e9;
const DAY_MS = 86_400_000;
const RPM_WINDOW_MS = 60_000;
const LIMITS = 'usage:limits';
/** Entries (user-days) per batch: one script call stays small. */
const MAX_BATCH_ENTRIES = 500;
/** A refusal because holds of answers in flight fill the budget: they settle within seconds. */
const HOLDS_RETRY_MS = 1_000;
/** Carries the user id whose limits changed. */
export const USAGE_LIMITS_CHANNEL = 'usage-limits';
const dayKey = (date: string) => `usage:day:${date}`;
const holdsKey = (date: string, userId: string) => `usage:holds:${date}:${encodeId(userId)}`;
const batchKey = (id: string) => `usage:batch:${id}`;
/** PostgreSQL mode: the Redis mirror of each user's cost of the day, counted by the budget reservation. */
const spentKey = (date: string) => `usage:spent:${date}`;
const seedKey = (date: string, userId: string) => `usage:seed:${date}:${encodeId(userId)}`;
/**
 * Added to a mirror field when it is seeded from PostgreSQL: a field below it lacks the
 * database's part. 2^52 nano-USD, so base + a day's cost stays an exact double (below 2^53, both
 * in JavaScript and in Redis' Lua) up to 4.5 million USD per user per day.
 */
const MIRROR_BASE = 2 ** 52;
/** The mirror is today's hot state only; PostgreSQL keeps the history. */
const MIRROR_TTL_MS = 2 * DAY_MS;
/** Batches committed to PostgreSQL whose mirror write waits (Redis away); older ones are given up (their holds expire). */
const MAX_MIRROR_BACKLOG = 1_000;
/** Batch ids kept this long in `usage_batches`; pruned at most hourly. */
const BATCH_ID_RETENTION_DAYS = 7;
const PRUNE_EVERY_MS = 3_600_000;

type UsageCounter = 'r' | 'i' | 'o' | 'c';
/** The one place a user's counter field is named (requests, input, output, cost). */
export function usageField(counter: UsageCounter, userId: string): string {
  return `${counter}:${encodeId(userId)}`;
}
/** The user a counter field belongs to (inverse of usageField). */
function userOfField(field: string): string {
  return decodeId(field.slice(2));
}

export type LimitRefusal = {
  ok: false;
  refused: 'rpm' | 'budget';
  retryAfterMs: number;
  /** A budget refusal because answers in flight hold the rest of it (not yet spent): retry soon. */
  heldInFlight?: boolean;
};
export type LimitCheck = { ok: true } | LimitRefusal;

/** What a budgeted request reserved at admission; settle it with recordSoon, or release it. */
export interface UsageHold {
  ref: HoldRef;
  amountNano: number;
  expiresAtMs: number;
}
export type Admission = { ok: true; hold: UsageHold | null } | LimitRefusal;

export interface UsageRecordInput {
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  /** The catalog model that served it, and its provider: kept per model by the PostgreSQL ledger. */
  model?: string;
  provider?: string;
}

export interface UsageLedgerOptions {
  store: DocStore;
  /**
   * PostgreSQL (DATABASE_URL), migrated (server/db/migrate.ts): the database of record for usage
   * and limits; `store` (Redis) then keeps the RPM windows, budget holds and the spend mirror.
   * Absent: everything in `store`, as before issue 23.
   */
  pool?: UsagePool;
  clock?: Clock;
  /** Day counters expire after this many days. Default 400 (a year of history, and then some). */
  retentionDays?: number;
  /** Retry the outbox this often while it holds anything. Default 5 000 ms; null: only on record()/flush(). */
  flushIntervalMs?: number | null;
  /**
   * recordSoon writes this long after the first record it buffers, so a burst (every request
   * of a busy user in that time) becomes one write per user-day. Default 100 ms; 0: at once.
   */
  writeBehindMs?: number;
  /** Outbox size cap in user-days; the oldest are dropped (and logged) beyond it. Default 100 000. */
  maxOutboxEntries?: number;
  /**
   * How long a budget hold counts when nothing settles it (the instance died): longer than any
   * answer should take, short enough that a dead instance's holds free the budget soon.
   * Default 10 minutes.
   */
  holdTtlMs?: number;
  /** How long a batch's marker stays (a retry after that would count it again). Default 24 h. */
  batchMarkerTtlMs?: number;
  logger?: Logger;
}

interface Pending {
  date: string;
  userId: string;
  /** PostgreSQL mode: the same usage per model ('' unknown); the Redis layout has no model. */
  perModel: Map<string, ModelPart> | null;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costNano: number;
  /** The part of costNano that holds still count in the store (until coverExpiresAt). */
  coveredNano: number;
  coverExpiresAt: number;
  /** Holds released when this entry is written. */
  releases: HoldRef[];
}

/** Written once: retried under the same id until the store confirms it. */
interface Batch {
  id: string;
  markerKey: string;
  entries: Map<string, Pending>;
}

/** One model's part of a user-day entry. */
interface ModelPart {
  provider: string | null;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costNano: number;
}

const entryId = (date: string, userId: string) => `${date}\u0000${userId}`;

export function utcDateOf(ms: number): string {
  // Asked for on every request with "now": the last day's string is kept with its bounds.
  if (ms >= lastDay.start && ms < lastDay.start + DAY_MS) return lastDay.date;
  const start = Math.floor(ms / DAY_MS) * DAY_MS;
  const date = new Date(start).toISOString().slice(0, 10);
  if (Number.isFinite(start)) lastDay = { start, date };
  return date;
}
let lastDay = { start: Number.NaN, date: '' };

function daysIn(range: UsageRange): string[] {
  const out: string[] = [];
  const end = Date.parse(`${range.to}T00:00:00Z`);
  for (let t = Date.parse(`${range.from}T00:00:00Z`); t <= end; t += DAY_MS) out.push(utcDateOf(t));
  return out;
}

export class UsageLedger {
  private readonly store: DocStore;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly maxOutbox: number;
  private readonly logger: Logger | undefined;
  /** Records not yet in a batch, merged per user-day. */
  private readonly outbox = new Map<string, Pending>();
  /** The batch being written or waiting for a retry. */
  private sealed: Batch | null = null;
  /** The last batch the store confirmed: its marker is deleted with the next batch. */
  private confirmed: string | null = null;
  private readonly holdTtlMs: number;
  private readonly markerTtlMs: number;
  private flushing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout | null;
  private readonly writeBehindMs: number;
  private writeBehind: NodeJS.Timeout | null = null;
  /** Users' limits, read on every request: in process, dropped on change by any instance. */
  private readonly limits: NotifiedCache<UserLimits>;
  private readonly pool: UsagePool | null;
  /** PostgreSQL mode: batches committed whose mirror write (and hold releases) waits, oldest first. */
  private readonly mirrorBacklog: Batch[] = [];
  private databaseDown = false;
  private lastPruneAt = Number.NEGATIVE_INFINITY;

  constructor(options: UsageLedgerOptions) {
    this.store = options.store;
    this.pool = options.pool ?? null;
    this.limits = new NotifiedCache({ store: options.store, channel: USAGE_LIMITS_CHANNEL, ...(options.clock ? { clock: options.clock } : {}) });
    this.clock = options.clock ?? systemClock;
    this.ttlMs = (options.retentionDays ?? 400) * DAY_MS;
    this.maxOutbox = options.maxOutboxEntries ?? 100_000;
    this.writeBehindMs = options.writeBehindMs ?? 100;
    this.holdTtlMs = options.holdTtlMs ?? 10 * 60_000;
    this.markerTtlMs = options.batchMarkerTtlMs ?? DAY_MS;
    this.logger = options.logger;
    const interval = options.flushIntervalMs === undefined ? 5_000 : options.flushIntervalMs;
    this.timer = interval === null ? null : setInterval(() => void (this.pending > 0 && this.flush()), interval);
    this.timer?.unref();
  }

  /** Turns on the limits cache (subscribes to changes). Without it every check reads the store. */
  async init(): Promise<void> {
    await this.limits.start();
  }

  /** User-days waiting in the outbox (open or in an unconfirmed batch). */
  get pending(): number {
    if (!this.sealed) return this.outbox.size;
    let n = this.sealed.entries.size;
    for (const id of this.outbox.keys()) if (!this.sealed.entries.has(id)) n += 1;
    return n;
  }

  /** Adds one request's usage to today's (UTC) counters and writes it. Never throws for a store failure: it buffers. */
  async record(userId: string, usage: UsageRecordInput, hold?: UsageHold | null): Promise<{ buffered: boolean }> {
    const id = this.buffer(this.entryOf(userId, usage, hold ?? null));
    await this.flush();
    return { buffered: this.outbox.has(id) || (this.sealed?.entries.has(id) ?? false) };
  }

  /**
   * Adds one request's usage without waiting for the store: into the outbox (merged per
   * user-day, so a burst of requests becomes one write per user) and written `writeBehindMs`
   * later in the background. Off the answer's path, yet not lost: budget checks on this
   * instance count the outbox, reads on this instance flush it first, and shutdown flushes it
   * (close()). Another instance sees it once the write lands, ~writeBehindMs later; a budgeted
   * request's hold (`hold`, released in the same write) covers its cost meanwhile. (Flushing
   * at once meant a store round trip per request under load: issue #8.)
   */
  recordSoon(userId: string, usage: UsageRecordInput, hold?: UsageHold | null): void {
    this.buffer(this.entryOf(userId, usage, hold ?? null));
    this.scheduleWrite();
  }

  /** Gives back a hold whose request produced nothing to bill (refused, failed before any answer). */
  release(userId: string, hold: UsageHold): void {
    this.buffer(this.entryOf(userId, { inputTokens: 0, outputTokens: 0, costUsd: 0 }, hold, 0));
    this.scheduleWrite();
  }

  /** Writes what the outbox holds, oldest first, stopping at the first failure. */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => (this.flushing = null));
    return this.flushing;
  }

  async mine(userId: string, range: UsageRange): Promise<UserUsage> {
    if (this.pool) {
      const valid = this.validRange(range);
      await this.settle();
      return usageOfUser(this.pool, userId, valid.from, valid.to);
    }
    await this.settle();
    const days = this.validDays(range);
    const fields = (['r', 'i', 'o', 'c'] as const).map((f) => usageField(f, userId));
    const rows: UsageDay[] = [];
    for (const date of days) {
      const c = await this.store.counters(dayKey(date), fields);
      if (Object.keys(c).length === 0) continue;
      rows.push(toDay(date, c[fields[0]!], c[fields[1]!], c[fields[2]!], c[fields[3]!]));
    }
    return summarise(userId, rows);
  }

  /** Every user's usage in the range (admin), highest cost first; with `page.limit`, one page of it. */
  async byUser(range: UsageRange, page: UsagePage = {}): Promise<UserUsage[]> {
    return (await this.byUserPage(range, page)).users;
  }

  /**
   * A page of byUser: `limit` users (all without it) after `cursor` (the previous page's
   * `nextCursor`), and the next page's cursor, null on the last page. A bad cursor is a
   * UsageError('invalid').
   */
  async byUserPage(range: UsageRange, page: UsagePage = {}): Promise<UserUsagePage> {
    const parsed = usagePageSchema.safeParse(page);
    if (!parsed.success) throw new UsageError('invalid', parsed.error.issues[0]?.message ?? 'invalid usage page');
    const cursor = parsed.data.cursor === undefined ? undefined : decodeUsageCursor(parsed.data.cursor)!;
    const { limit } = parsed.data;
    if (this.pool) {
      const valid = this.validRange(range);
      await this.settle();
      const { users, next } = await usageByUser(this.pool, valid.from, valid.to, { ...(limit !== undefined ? { limit } : {}), ...(cursor ? { cursor } : {}) });
      return { users, nextCursor: next ? encodeUsageCursor(next) : null };
    }
    const all = await this.allByUser(range);
    // The same order as the list (cost, then id): the page starts after the cursor's row.
    const rest = cursor ? all.filter((u) => compareUsers(u, cursor) > 0) : all;
    const users = limit === undefined ? rest : rest.slice(0, limit);
    const last = users.at(-1);
    return { users, nextCursor: limit !== undefined && rest.length > limit && last ? encodeUsageCursor({ costNano: Math.round(last.costUsd * NANO), userId: last.userId }) : null };
  }

  private async allByUser(range: UsageRange): Promise<UserUsage[]> {
    await this.settle();
    const perUser = new Map<string, UsageDay[]>();
    for (const date of this.validDays(range)) {
      const counters = await this.store.counters(dayKey(date));
      const users = new Set(Object.keys(counters).map(userOfField));
      for (const userId of users) {
        const day = toDay(date, counters[usageField('r', userId)], counters[usageField('i', userId)], counters[usageField('o', userId)], counters[usageField('c', userId)]);
        perUser.set(userId, [...(perUser.get(userId) ?? []), day]);
      }
    }
    return [...perUser].map(([userId, days]) => summarise(userId, days)).sort((a, b) => compareUsers(a, { costNano: Math.round(b.costUsd * NANO), userId: b.userId }));
  }

  async setLimits(userId: string, limits: unknown): Promise<UserLimits> {
    const parsed = userLimitsSchema.parse(limits);
    if (this.pool) await writeUserLimits(this.pool, userId, parsed);
    else await this.store.mapSet(LIMITS, encodeId(userId), parsed);
    await this.limits.changed(userId);
    return parsed;
  }

  getLimits(userId: string): Promise<UserLimits> {
    return this.limits.get(userId, async () => {
      const stored = this.pool ? await readUserLimits(this.pool, userId) : await this.store.mapGet(LIMITS, encodeId(userId));
      const parsed = userLimitsSchema.safeParse(stored);
      return parsed.success ? parsed.data : {};
    });
  }

  /** admit() without a hold: the budget (already spent or held) and the RPM window. */
  async checkUserLimits(userId: string): Promise<LimitCheck> {
    const admitted = await this.admit(userId);
    return admitted.ok ? { ok: true } : admitted;
  }

  /**
   * Call once per request, before serving it. Budget first (refusing it costs no RPM slot): with
   * `holdUsd` (the request's most possible cost, business/cost.ts maxCost) it is reserved in the
   * same atomic step that checks the budget, across instances; settle the hold with
   * recordSoon(..., hold) or give it back with release(). Then the RPM window, which counts this
   * request when it allows it. Users without limits cost no store round trip. Store errors
   * propagate: the gateway decides whether to fail open or closed.
   */
  async admit(userId: string, holdUsd?: number): Promise<Admission> {
    const now = this.clock();
    const limits = await this.getLimits(userId);
    let hold: UsageHold | null = null;
    if (limits.dailyBudgetUsd !== undefined) {
      const today = utcDateOf(now);
      const limit = Math.round(limits.dailyBudgetUsd * NANO);
      const expiresAtMs = now + this.holdTtlMs;
      const amountNano = holdUsd === undefined ? undefined : Math.max(0, Math.ceil(holdUsd * NANO));
      // PostgreSQL mode counts the mirror, whose seeded fields carry MIRROR_BASE (see the top).
      const base = this.pool ? MIRROR_BASE : 0;
      const extra = this.unwrittenNano(today, userId, now);
      const reserve = () =>
        this.store.reserve({
          counterKey: this.pool ? spentKey(today) : dayKey(today),
          field: usageField('c', userId),
          extra,
          limit: limit + base,
          holdsKey: holdsKey(today, userId),
          ...(amountNano !== undefined ? { hold: { id: randomUUID(), amount: amountNano, expiresAtMs } } : {}),
          nowMs: now,
        });
      let reserved = await reserve();
      if (this.pool && reserved.spent - extra < MIRROR_BASE) {
        // The mirror lacks the database's part of the day: seed it, give back what was placed
        // against the incomplete count, and reserve again. Once per user-day (or Redis flush).
        await this.seedMirror(this.pool, today, userId, reserved.spent - extra);
        if (reserved.hold) await this.store.applyOnce({ markerKey: batchKey(randomUUID()), markerTtlMs: 60_000, writes: [], releases: [reserved.hold] });
        reserved = await reserve();
      }
      if (!reserved.ok) {
        const untilMidnight = Date.parse(`${today}T00:00:00Z`) + DAY_MS - now;
        if (reserved.spent - base >= limit) return { ok: false, refused: 'budget', retryAfterMs: untilMidnight };
        return { ok: false, refused: 'budget', retryAfterMs: Math.min(HOLDS_RETRY_MS, untilMidnight), heldInFlight: true };
      }
      if (reserved.hold && amountNano !== undefined) hold = { ref: reserved.hold, amountNano, expiresAtMs };
    }
    if (limits.rpm !== undefined) {
      const hit = await this.store.windowHit(`usage:rpm:${encodeId(userId)}`, now, RPM_WINDOW_MS, limits.rpm);
      if (!hit.allowed) {
        if (hold) this.release(userId, hold);
        return { ok: false, refused: 'rpm', retryAfterMs: hit.retryAfterMs };
      }
    }
    return { ok: true, hold };
  }

  /** Stops the flush timer and makes one last attempt to write the outbox. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.writeBehind) clearTimeout(this.writeBehind);
    this.writeBehind = null;
    await this.flush();
    await this.limits.close();
  }

  private scheduleWrite(): void {
    if (this.writeBehindMs === 0) {
      void this.flush();
      return;
    }
    if (this.writeBehind) return;
    this.writeBehind = setTimeout(() => {
      this.writeBehind = null;
      void this.flush();
    }, this.writeBehindMs);
    // close() flushes what is left; the timer alone must not keep a process alive.
    this.writeBehind.unref();
  }

  /**
   * This instance's records of a user-day the store does not count yet (neither written nor
   * covered by a live hold). With PostgreSQL: not yet in the mirror (the outbox, and committed
   * batches whose mirror write waits: none, unless Redis is away).
   */
  private unwrittenNano(date: string, userId: string, now: number): number {
    const id = entryId(date, userId);
    let total = 0;
    const count = (entry: Pending | undefined) => {
      if (entry) total += entry.costNano - (entry.coverExpiresAt > now ? entry.coveredNano : 0);
    };
    count(this.outbox.get(id));
    count(this.sealed?.entries.get(id));
    for (const batch of this.mirrorBacklog) count(batch.entries.get(id));
    return total;
  }

  /**
   * Adds the day's cost in PostgreSQL to a mirror field that lacks it. `observed` is what the
   * field held at the reservation: everything in the mirror is in PostgreSQL already (a batch is
   * mirrored only after it committed), so it is taken off. At most once per user-day across
   * instances (the seed marker, gone with the field on a flush); a batch mirrored between the
   * reservation and the read counts twice: over, never under.
   */
  private async seedMirror(pool: UsagePool, date: string, userId: string, observed: number): Promise<void> {
    const spent = await dailySpentNano(pool, userId, date);
    await this.store.applyOnce({
      markerKey: seedKey(date, userId),
      markerTtlMs: MIRROR_TTL_MS,
      writes: [{ key: spentKey(date), deltas: { [usageField('c', userId)]: MIRROR_BASE + spent - observed }, ttlMs: MIRROR_TTL_MS }],
    });
  }

  /** One store step for a batch: its counters per day, and the holds it settles. */
  private async write(batch: Batch): Promise<void> {
    const perDay = new Map<string, Record<string, number>>();
    const releases: HoldRef[] = [];
    for (const entry of batch.entries.values()) {
      releases.push(...entry.releases);
      if (entry.requests === 0 && entry.inputTokens === 0 && entry.outputTokens === 0 && entry.costNano === 0) continue;
      let deltas = perDay.get(entry.date);
      if (!deltas) perDay.set(entry.date, (deltas = {}));
      deltas[usageField('r', entry.userId)] = entry.requests;
      deltas[usageField('i', entry.userId)] = entry.inputTokens;
      deltas[usageField('o', entry.userId)] = entry.outputTokens;
      deltas[usageField('c', entry.userId)] = entry.costNano;
    }
    const writes: CounterWrite[] = [...perDay].map(([date, deltas]) => ({ key: dayKey(date), deltas, ttlMs: this.ttlMs }));
    await this.applyBatch(batch, writes, releases);
  }

  /** One store step at most once per batch (its marker): the counters and the holds they settle; the last confirmed marker is forgotten in it. */
  private async applyBatch(batch: Batch, writes: CounterWrite[], releases: HoldRef[]): Promise<void> {
    await this.store.applyOnce({
      markerKey: batch.markerKey,
      markerTtlMs: this.markerTtlMs,
      writes,
      releases,
      ...(this.confirmed !== null ? { forget: this.confirmed } : {}),
    });
  }

  /**
   * PostgreSQL mode: a committed batch's cost into the mirror and its holds released, in one
   * step at most once (the batch's marker), as write() does in the store alone.
   */
  private async writeMirror(batch: Batch): Promise<void> {
    const perDay = new Map<string, Record<string, number>>();
    const releases: HoldRef[] = [];
    for (const entry of batch.entries.values()) {
      releases.push(...entry.releases);
      if (entry.costNano === 0) continue;
      let deltas = perDay.get(entry.date);
      if (!deltas) perDay.set(entry.date, (deltas = {}));
      const field = usageField('c', entry.userId);
      deltas[field] = (deltas[field] ?? 0) + entry.costNano;
    }
    const writes: CounterWrite[] = [...perDay].map(([date, deltas]) => ({ key: spentKey(date), deltas, ttlMs: MIRROR_TTL_MS }));
    await this.applyBatch(batch, writes, releases);
  }

  /** This instance's own records written (or found unwritable) before a read, so a reader sees its own requests. */
  private async settle(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.pending > 0) await this.flush();
  }

  private entryOf(userId: string, usage: UsageRecordInput, hold: UsageHold | null, requests = 1): Pending {
    const costNano = Math.max(0, Math.round(usage.costUsd * NANO));
    const entry: Pending = {
      date: utcDateOf(this.clock()),
      userId,
      perModel: null,
      requests,
      inputTokens: Math.max(0, Math.round(usage.inputTokens)),
      outputTokens: Math.max(0, Math.round(usage.outputTokens)),
      costNano,
      coveredNano: hold ? Math.min(costNano, hold.amountNano) : 0,
      coverExpiresAt: hold ? hold.expiresAtMs : Infinity,
      releases: hold ? [hold.ref] : [],
    };
    if (this.pool) {
      const { requests, inputTokens, outputTokens } = entry;
      entry.perModel = new Map([[usage.model ?? '', { provider: usage.provider ?? null, requests, inputTokens, outputTokens, costNano }]]);
    }
    return entry;
  }

  /** Into the open outbox, merged per user-day; returns the entry's id. */
  private buffer(entry: Pending): string {
    const id = entryId(entry.date, entry.userId);
    const existing = this.outbox.get(id);
    if (existing) {
      existing.requests += entry.requests;
      existing.inputTokens += entry.inputTokens;
      existing.outputTokens += entry.outputTokens;
      existing.costNano += entry.costNano;
      existing.coveredNano += entry.coveredNano;
      existing.coverExpiresAt = Math.min(existing.coverExpiresAt, entry.coverExpiresAt);
      existing.releases.push(...entry.releases);
      if (existing.perModel && entry.perModel) {
        for (const [model, part] of entry.perModel) {
          const known = existing.perModel.get(model);
          if (!known) existing.perModel.set(model, { ...part });
          else {
            known.provider ??= part.provider;
            known.requests += part.requests;
            known.inputTokens += part.inputTokens;
            known.outputTokens += part.outputTokens;
            known.costNano += part.costNano;
          }
        }
      }
      return id;
    }
    this.outbox.set(id, { ...entry, releases: [...entry.releases], perModel: entry.perModel ? new Map([...entry.perModel].map(([m, p]) => [m, { ...p }])) : null });
    if (this.outbox.size + (this.sealed?.entries.size ?? 0) > this.maxOutbox) {
      const oldest = this.outbox.keys().next().value!;
      this.outbox.delete(oldest);
      this.logger?.error({ outboxSize: this.maxOutbox }, 'usage outbox full; oldest user-day dropped');
    }
    return id;
  }

  /** The next batch: the unconfirmed one again (same id), or the oldest open entries under a new id. */
  private nextBatch(): Batch {
    if (this.sealed) return this.sealed;
    const entries = new Map<string, Pending>();
    for (const [id, entry] of this.outbox) {
      if (entries.size >= MAX_BATCH_ENTRIES) break;
      entries.set(id, entry);
    }
    for (const id of entries.keys()) this.outbox.delete(id);
    const id = randomUUID();
    this.sealed = { id, markerKey: batchKey(id), entries };
    return this.sealed;
  }

  private async drain(): Promise<void> {
    if (this.pool) return this.drainToDatabase(this.pool);
    // Until empty: what is recorded while a write is out goes in the same drain.
    while (this.sealed || this.outbox.size > 0) {
      const batch = this.nextBatch();
      try {
        await this.write(batch);
      } catch (error) {
        // Kept as it is, same id: if the store applied it and only the reply was lost, the
        // retry is a no-op. Stop: the store is still down.
        this.logger?.warn({ err: error instanceof Error ? error.message : 'unknown' }, 'usage write failed; kept in the outbox');
        return;
      }
      this.confirmed = batch.markerKey;
      this.sealed = null;
    }
  }

  /**
   * PostgreSQL mode: each batch committed (the record), then mirrored into the store. A batch
   * leaves the outbox once committed; its mirror write waits in a backlog while the store is
   * away, so a Redis outage does not hold up the record, nor a PostgreSQL one the holds' release.
   */
  private async drainToDatabase(pool: UsagePool): Promise<void> {
    let mirrorUp = true;
    for (;;) {
      while (mirrorUp && this.mirrorBacklog.length > 0) {
        const batch = this.mirrorBacklog[0]!;
        try {
          await this.writeMirror(batch);
        } catch (error) {
          mirrorUp = false;
          this.logger?.warn({ err: error instanceof Error ? error.message : 'unknown' }, 'usage mirror write failed; retried with the next batch');
          break;
        }
        this.mirrorBacklog.shift();
        this.confirmed = batch.markerKey;
      }
      if (!this.sealed && this.outbox.size === 0) break;
      const batch = this.nextBatch();
      try {
        await commitUsageBatch(pool, batch.id, rowsOf(batch));
      } catch (error) {
        // Kept as it is, same id: if PostgreSQL committed it and only the reply was lost, the
        // retry finds its id and changes nothing. Stop: the database is still away.
        if (!this.databaseDown) {
          this.databaseDown = true;
          this.logger?.error({ code: (error as { code?: unknown }).code ?? 'error', pending: this.pending }, 'usage database unreachable; records wait in the outbox until it answers');
        }
        return;
      }
      if (this.databaseDown) {
        this.databaseDown = false;
        this.logger?.info({ pending: this.pending }, 'usage database answers again; the outbox drains');
      }
      this.sealed = null;
      this.mirrorBacklog.push(batch);
      if (this.mirrorBacklog.length > MAX_MIRROR_BACKLOG) {
        this.mirrorBacklog.shift(); // in PostgreSQL already; only its holds are left to expire
        this.logger?.error({ backlog: MAX_MIRROR_BACKLOG }, 'usage mirror backlog full; the oldest batch is left unmirrored');
      }
    }
    const now = this.clock();
    if (now - this.lastPruneAt >= PRUNE_EVERY_MS) {
      this.lastPruneAt = now;
      await pruneUsageBatches(pool, BATCH_ID_RETENTION_DAYS).catch(() => {});
    }
  }

  private validRange(range: UsageRange): UsageRange {
    const parsed = usageRangeSchema.safeParse(range);
    if (!parsed.success) throw new UsageError('invalid', parsed.error.issues[0]?.message ?? 'invalid usage range');
    return parsed.data;
  }

  /** The range's days; the range is checked first (schema: real dates, order, length), so no list is built for an absurd one. */
  private validDays(range: UsageRange): string[] {
    const parsed = usageRangeSchema.safeParse(range);
    if (!parsed.success) throw new UsageError('invalid', parsed.error.issues[0]?.message ?? 'invalid usage range');
    return daysIn(parsed.data);
  }
}

/** A usage call the caller got wrong; `code` as the other domain errors (routers/domainErrors.ts). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    readonly code: 'invalid',
    message: string,
  ) {
    super(message);
  }
}

/** byUser's order: cost, highest first, then user id; > 0 when `a` comes after `b`. */
function compareUsers(a: UserUsage, b: { costNano: number; userId: string }): number {
  return b.costNano - Math.round(a.costUsd * NANO) || a.userId.localeCompare(b.userId);
}

function rowsOf(batch: Batch): UsageRow[] {
  const rows: UsageRow[] = [];
  for (const e of batch.entries.values()) {
    for (const [model, p] of e.perModel ?? []) {
      // A hold given back without any usage: nothing to record, only its release to mirror.
      if (p.requests === 0 && p.inputTokens === 0 && p.outputTokens === 0 && p.costNano === 0) continue;
      rows.push({ userId: e.userId, date: e.date, model, provider: p.provider, requests: p.requests, inputTokens: p.inputTokens, outputTokens: p.outputTokens, costNano: p.costNano });
    }
  }
  return rows;
}

function toDay(date: string, requests = 0, inputTokens = 0, outputTokens = 0, costNano = 0): UsageDay {
  return { date, requests, inputTokens, outputTokens, costUsd: costNano / NANO };
}

function summarise(userId: string, days: UsageDay[]): UserUsage {
  const totals = days.reduce((t, d) => ({ requests: t.requests + d.requests, inputTokens: t.inputTokens + d.inputTokens, outputTokens: t.outputTokens + d.outputTokens, nano: t.nano + Math.round(d.costUsd * NANO) }), { requests: 0, inputTokens: 0, outputTokens: 0, nano: 0 });
  return { userId, requests: totals.requests, inputTokens: totals.inputTokens, outputTokens: totals.outputTokens, costUsd: totals.nano / NANO, days };
}
