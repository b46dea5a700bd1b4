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

export const usageDaySchema = usageTotalsSchema.extend({ date: utcDateSchema });
export type UsageDay = z.infer<typeof usageDaySchema>;

export const userUsageSchema = usageTotalsSchema.extend({ userId: z.string(), days: z.array(usageDaySchema) });
export type UserUsage = z.infer<typeof userUsageSchema>;

export const userLimitsSchema = z.object({
  /** Requests per minute (sliding window, shared by every gateway instance). Absent: unlimited. */
  rpm: z.number().int().min(1).max(1_000_000).optional(),
  /** US dollars per UTC day. Absent: unlimited. */
  dailyBudgetUsd: z.number().min(0).max(1_000_000).optional(),
});
export type UserLimits = z.infer<typeof userLimitsSchema>;

export const setUserLimitsInputSchema = z.object({ userId: userIdSchema, limits: userLimitsSchema });
