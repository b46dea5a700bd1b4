import { z } from 'zod';
import { userIdSchema } from './api';

export { userIdSchema };

/** Per-user, per-UTC-day usage, and the limits admins set on it. */

const DAY_MS = 86_400_000;

/**
 * Days since 1970-01-01 of a real calendar date `YYYY-MM-DD`, or null when it is not one
 * ('2025-02-30', '2025-13-01'). Arithmetic only: nothing is built per day.
 */
export function epochDayOf(date: string): number | null {
  const ms = Date.parse(`${date}T00:00:00Z`);
  if (!Number.isFinite(ms) || new Date(ms).toISOString().slice(0, 10) !== date) return null;
  return ms / DAY_MS;
}

/** A UTC calendar day, `YYYY-MM-DD`, that exists. */
export const utcDateSchema = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'dates are YYYY-MM-DD (UTC)')
  .refine((d) => epochDayOf(d) !== null, 'not a calendar date');

/**
 * Inclusive day range; at most MAX_USAGE_RANGE_DAYS long so one query stays cheap. The length is
 * computed from the two dates, so an absurd range ('0000-01-01' to '9999-12-31') is refused
 * here, before any work (issue 24.2: building every day first blocked the event loop for seconds).
 */
export const MAX_USAGE_RANGE_DAYS = 366;
export const usageRangeSchema = z.object({ from: utcDateSchema, to: utcDateSchema }).superRefine((r, ctx) => {
  const from = epochDayOf(r.from);
  const to = epochDayOf(r.to);
  if (from === null || to === null) return; // the dates' own issues say why
  if (from > to) ctx.addIssue({ code: 'custom', message: '`from` must not be after `to`', path: ['to'] });
  else if (to - from + 1 > MAX_USAGE_RANGE_DAYS) ctx.addIssue({ code: 'custom', message: `a usage range covers at most ${MAX_USAGE_RANGE_DAYS} days`, path: ['to'] });
});
export type UsageRange = z.infer<typeof usageRangeSchema>;

export const usageTotalsSchema = z.object({
  requests: z.number().int().nonnegative(),
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  /** US dollars, markup included. */
  costUsd: z.number().nonnegative(),
});
export type UsageTotals = z.infer<typeof usageTotalsSchema>;

/** A day's usage of one model (the catalog id that served it), where the record said which. */
export const usageModelSchema = usageTotalsSchema.extend({ model: z.string() });
export type UsageModel = z.infer<typeof usageModelSchema>;

/** `models`: the day per model, where known (the PostgreSQL ledger keeps it; the Redis one does not). */
export const usageDaySchema = usageTotalsSchema.extend({ date: utcDateSchema, models: z.array(usageModelSchema).optional() });
export type UsageDay = z.infer<typeof usageDaySchema>;

export const userUsageSchema = usageTotalsSchema.extend({ userId: z.string(), days: z.array(usageDaySchema) });
export type UserUsage = z.infer<typeof userUsageSchema>;

/**
 * Where a page of usage.byUser starts: opaque to callers (base64url of the last row's cost and
 * user id: keyset pagination, so a page is one indexed query however deep it is). Decoded here so
 * the router refuses a bad one as input (400) before the resolver runs.
 */
export interface UsageCursor {
  costNano: number;
  userId: string;
}

export function encodeUsageCursor(cursor: UsageCursor): string {
  const bytes = new TextEncoder().encode(JSON.stringify([cursor.costNano, cursor.userId]));
  return btoa(String.fromCharCode(...bytes)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

export function decodeUsageCursor(text: string): UsageCursor | null {
  if (!/^[A-Za-z0-9_-]{1,1400}$/.test(text)) return null;
  try {
    const binary = atob(text.replaceAll('-', '+').replaceAll('_', '/'));
    const parsed: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0))));
    if (!Array.isArray(parsed) || parsed.length !== 2) return null;
    const [costNano, userId] = parsed as unknown[];
    if (typeof costNano !== 'number' || !Number.isSafeInteger(costNano) || costNano < 0 || typeof userId !== 'string' || userId.length > 1000) return null;
    return { costNano, userId };
  } catch {
    return null;
  }
}

/** Most users in one page of usage.byUser. */
export const MAX_USAGE_PAGE = 500;
export const usagePageSchema = z.object({
  /** Users per page; absent: all of them (one page). */
  limit: z.number().int().min(1).max(MAX_USAGE_PAGE).optional(),
  /** The previous page's `nextCursor`. */
  cursor: z
    .string()
    .refine((c) => decodeUsageCursor(c) !== null, 'not a usage cursor')
    .optional(),
});
export type UsagePage = z.infer<typeof usagePageSchema>;

export const userUsagePageSchema = z.object({ users: z.array(userUsageSchema), nextCursor: z.string().nullable() });
export type UserUsagePage = z.infer<typeof userUsagePageSchema>;

export const userLimitsSchema = z.object({
  /** Requests per minute (sliding window, shared by every gateway instance). Absent: unlimited. */
  rpm: z.number().int().min(1).max(1_000_000).optional(),
  /** US dollars per UTC day. Absent: unlimited. */
  dailyBudgetUsd: z.number().min(0).max(1_000_000).optional(),
  /**
   * The user's weight in a shared pool's fair share while the pool is scarce (issue 22): a user
   * of weight 2 may count on twice the requests of a user of weight 1 (e.g. by plan). Absent: 1.
   */
  weight: z.number().int().min(1).max(1_000).optional(),
});
export type UserLimits = z.infer<typeof userLimitsSchema>;

export const setUserLimitsInputSchema = z.object({ userId: userIdSchema, limits: userLimitsSchema });
