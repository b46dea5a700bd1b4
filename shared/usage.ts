import { z } from 'zod';
import { userIdSchema } from './api';

export { userIdSchema };

/** Per-user, per-UTC-day usage, and the limits admins set on it. */

/** A UTC calendar day, `YYYY-MM-DD`. */
export const utcDateSchema = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'dates are YYYY-MM-DD (UTC)');

/** Inclusive day range; at most MAX_USAGE_RANGE_DAYS long so one query stays cheap. */
export const MAX_USAGE_RANGE_DAYS = 366;
export const usageRangeSchema = z
  .object({ from: utcDateSchema, to: utcDateSchema })
  .refine((r) => r.from <= r.to, { message: '`from` must not be after `to`', path: ['to'] });
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
