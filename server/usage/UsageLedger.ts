import type { Logger } from '../observability/logger';
import { systemClock, type Clock, type DocStore } from '../store/DocStore';
import { NotifiedCache } from '../store/NotifiedCache';
import { decodeId, encodeId } from '../store/storeIds';
import {
  MAX_USAGE_RANGE_DAYS,
  usageRangeSchema,
  userLimitsSchema,
  type UsageDay,
  type UsageRange,
  type UserLimits,
  type UserUsage,
} from '../../shared/usage';

/**
 * Per-user, per-UTC-day usage (requests, tokens, cost) and the per-user limits admins set.
 *
 * Store layout: `usage:day:<YYYY-MM-DD>` is one counter map per day with fields
 * `r:<user>` requests, `i:<user>` input tokens, `o:<user>` output tokens, `c:<user>` cost in
 * nano-USD (integers: sums stay exact, HINCRBY not HINCRBYFLOAT). One request's four counters
 * are written in one MULTI. `usage:limits` maps user -> limits; `usage:rpm:<user>` is the
 * user's sliding request window, shared by every instance on the same Redis. `<user>` is always
 * the id as storeIds.encodeId stores it (a hex or key-shaped id encoded: issue 24.10).
 *
 * Outbox: a record that fails to write (Redis down) is kept in memory, merged per user-day, and
 * written by the next successful record or the periodic flush. Delivery is at least once: a
 * MULTI whose reply is lost after Redis applied it would be counted twice; we accept that
 * rare over-count over losing usage. A crashed process loses its outbox.
 */

const NANO = 1e9;
const DAY_MS = 86_400_000;
const RPM_WINDOW_MS = 60_000;
const LIMITS = 'usage:limits';
/** Carries the user id whose limits changed. */
export const USAGE_LIMITS_CHANNEL = 'usage-limits';
const dayKey = (date: string) => `usage:day:${date}`;
/** A user's counter in a day's map: `metric` is r, i, o or c. */
const fieldOf = (metric: string, userId: string) => `${metric}:${encodeId(userId)}`;

export type LimitCheck = { ok: true } | { ok: false; refused: 'rpm' | 'budget'; retryAfterMs: number };

export interface UsageRecordInput {
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

export interface UsageLedgerOptions {
  store: DocStore;
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
  logger?: Logger;
}

interface Pending {
  date: string;
  userId: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costNano: number;
}

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
  private readonly outbox = new Map<string, Pending>();
  private flushing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout | null;
  private readonly writeBehindMs: number;
  private writeBehind: NodeJS.Timeout | null = null;
  /** Users' limits, read on every request: in process, dropped on change by any instance. */
  private readonly limits: NotifiedCache<UserLimits>;

  constructor(options: UsageLedgerOptions) {
    this.store = options.store;
    this.limits = new NotifiedCache({ store: options.store, channel: USAGE_LIMITS_CHANNEL, ...(options.clock ? { clock: options.clock } : {}) });
    this.clock = options.clock ?? systemClock;
    this.ttlMs = (options.retentionDays ?? 400) * DAY_MS;
    this.maxOutbox = options.maxOutboxEntries ?? 100_000;
    this.writeBehindMs = options.writeBehindMs ?? 100;
    this.logger = options.logger;
    const interval = options.flushIntervalMs === undefined ? 5_000 : options.flushIntervalMs;
    this.timer = interval === null ? null : setInterval(() => void (this.outbox.size > 0 && this.flush()), interval);
    this.timer?.unref();
  }

  /** Turns on the limits cache (subscribes to changes). Without it every check reads the store. */
  async init(): Promise<void> {
    await this.limits.start();
  }

  /** User-days waiting in the outbox. */
  get pending(): number {
    return this.outbox.size;
  }

  /** Adds one request's usage to today's (UTC) counters. Never throws for a store failure: it buffers. */
  async record(userId: string, usage: UsageRecordInput): Promise<{ buffered: boolean }> {
    const entry = this.entryOf(userId, usage);
    if (this.outbox.size > 0) await this.flush();
    if (this.outbox.size === 0) {
      try {
        await this.write(entry);
        return { buffered: false };
      } catch (error) {
        this.logger?.warn({ err: error instanceof Error ? error.message : 'unknown' }, 'usage write failed; kept in the outbox');
      }
    }
    this.buffer(entry);
    return { buffered: true };
  }

  /**
   * Adds one request's usage without waiting for the store: into the outbox (merged per
   * user-day, so a burst of requests becomes one write per user) and written `writeBehindMs`
   * later in the background. Off the answer's path, yet not lost: budget checks on this
   * instance count the outbox, reads on this instance flush it first, and shutdown flushes it
   * (close()). Another instance sees it once the write lands, ~writeBehindMs later. (Flushing
   * at once meant a MULTI/4 x HINCRBY/PEXPIRE/EXEC round per request under load: issue #8.)
   */
  recordSoon(userId: string, usage: UsageRecordInput): void {
    this.buffer(this.entryOf(userId, usage));
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

  /** Writes what the outbox holds, oldest first, stopping at the first failure. */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => (this.flushing = null));
    return this.flushing;
  }

  async mine(userId: string, range: UsageRange): Promise<UserUsage> {
    await this.settle();
    const days = this.validDays(range);
    const fields = ['r', 'i', 'o', 'c'].map((f) => fieldOf(f, userId));
    const rows: UsageDay[] = [];
    for (const date of days) {
      const c = await this.store.counters(dayKey(date), fields);
      if (Object.keys(c).length === 0) continue;
      rows.push(toDay(date, c[fields[0]!], c[fields[1]!], c[fields[2]!], c[fields[3]!]));
    }
    return summarise(userId, rows);
  }

  /** Every user's usage in the range (admin), highest cost first. */
  async byUser(range: UsageRange): Promise<UserUsage[]> {
    await this.settle();
    const perUser = new Map<string, UsageDay[]>();
    for (const date of this.validDays(range)) {
      const counters = await this.store.counters(dayKey(date));
      const users = new Set(Object.keys(counters).map((field) => field.slice(2)));
      for (const stored of users) {
        const day = toDay(date, counters[`r:${stored}`], counters[`i:${stored}`], counters[`o:${stored}`], counters[`c:${stored}`]);
        const userId = decodeId(stored);
        perUser.set(userId, [...(perUser.get(userId) ?? []), day]);
      }
    }
    return [...perUser].map(([userId, days]) => summarise(userId, days)).sort((a, b) => b.costUsd - a.costUsd || a.userId.localeCompare(b.userId));
  }

  async setLimits(userId: string, limits: unknown): Promise<UserLimits> {
    const parsed = userLimitsSchema.parse(limits);
    await this.store.mapSet(LIMITS, encodeId(userId), parsed);
    await this.limits.changed(userId);
    return parsed;
  }

  getLimits(userId: string): Promise<UserLimits> {
    return this.limits.get(userId, async () => {
      const parsed = userLimitsSchema.safeParse(await this.store.mapGet(LIMITS, encodeId(userId)));
      return parsed.success ? parsed.data : {};
    });
  }

  /**
   * Call once per request, before serving it. Budget first (refusing it costs no RPM slot), then
   * the RPM window, which counts this request when it allows it. Store errors propagate: the
   * gateway decides whether to fail open or closed.
   */
  async checkUserLimits(userId: string): Promise<LimitCheck> {
    const now = this.clock();
    const limits = await this.getLimits(userId);
    if (limits.dailyBudgetUsd !== undefined) {
      const today = utcDateOf(now);
      const field = fieldOf('c', userId);
      const stored = (await this.store.counters(dayKey(today), [field]))[field] ?? 0;
      const buffered = this.outbox.get(`${today}\u0000${userId}`)?.costNano ?? 0;
      if ((stored + buffered) / NANO >= limits.dailyBudgetUsd) {
        const nextMidnight = Date.parse(`${today}T00:00:00Z`) + DAY_MS;
        return { ok: false, refused: 'budget', retryAfterMs: nextMidnight - now };
      }
    }
    if (limits.rpm !== undefined) {
      const hit = await this.store.windowHit(`usage:rpm:${encodeId(userId)}`, now, RPM_WINDOW_MS, limits.rpm);
      if (!hit.allowed) return { ok: false, refused: 'rpm', retryAfterMs: hit.retryAfterMs };
    }
    return { ok: true };
  }

  /** Stops the flush timer and makes one last attempt to write the outbox. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.writeBehind) clearTimeout(this.writeBehind);
    this.writeBehind = null;
    await this.flush();
    await this.limits.close();
  }

  private async write(entry: Pending): Promise<void> {
    await this.store.increment(
      dayKey(entry.date),
      { [fieldOf('r', entry.userId)]: entry.requests, [fieldOf('i', entry.userId)]: entry.inputTokens, [fieldOf('o', entry.userId)]: entry.outputTokens, [fieldOf('c', entry.userId)]: entry.costNano },
      this.ttlMs,
    );
  }

  /** This instance's own records written (or found unwritable) before a read, so a reader sees its own requests. */
  private async settle(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.outbox.size > 0) await this.flush();
  }

  private entryOf(userId: string, usage: UsageRecordInput): Pending {
    return {
      date: utcDateOf(this.clock()),
      userId,
      requests: 1,
      inputTokens: Math.max(0, Math.round(usage.inputTokens)),
      outputTokens: Math.max(0, Math.round(usage.outputTokens)),
      costNano: Math.max(0, Math.round(usage.costUsd * NANO)),
    };
  }

  private buffer(entry: Pending): void {
    const id = `${entry.date}\u0000${entry.userId}`;
    const existing = this.outbox.get(id);
    if (existing) {
      existing.requests += entry.requests;
      existing.inputTokens += entry.inputTokens;
      existing.outputTokens += entry.outputTokens;
      existing.costNano += entry.costNano;
      return;
    }
    this.outbox.set(id, { ...entry });
    if (this.outbox.size > this.maxOutbox) {
      const oldest = this.outbox.keys().next().value!;
      this.outbox.delete(oldest);
      this.logger?.error({ outboxSize: this.maxOutbox }, 'usage outbox full; oldest user-day dropped');
    }
  }

  private async drain(): Promise<void> {
    // Until empty: what is recorded while a write is out goes in the same drain.
    while (this.outbox.size > 0) {
      const [id, entry] = this.outbox.entries().next().value!;
      this.outbox.delete(id);
      try {
        await this.write(entry);
      } catch {
        // Put it back, merged with anything recorded meanwhile, and stop: the store is still down.
        this.buffer(entry);
        return;
      }
    }
  }

  private validDays(range: UsageRange): string[] {
    const parsed = usageRangeSchema.parse(range);
    const days = daysIn(parsed);
    if (days.length > MAX_USAGE_RANGE_DAYS) throw new RangeError(`a usage range covers at most ${MAX_USAGE_RANGE_DAYS} days`);
    return days;
  }
}

function toDay(date: string, requests = 0, inputTokens = 0, outputTokens = 0, costNano = 0): UsageDay {
  return { date, requests, inputTokens, outputTokens, costUsd: costNano / NANO };
}

function summarise(userId: string, days: UsageDay[]): UserUsage {
  const totals = days.reduce((t, d) => ({ requests: t.requests + d.requests, inputTokens: t.inputTokens + d.inputTokens, outputTokens: t.outputTokens + d.outputTokens, nano: t.nano + Math.round(d.costUsd * NANO) }), { requests: 0, inputTokens: 0, outputTokens: 0, nano: 0 });
  return { userId, requests: totals.requests, inputTokens: totals.inputTokens, outputTokens: totals.outputTokens, costUsd: totals.nano / NANO, days };
}
