import { z } from 'zod';
import { providerIdSchema } from './providers';

export const keyHealthSchema = z.enum(['ok', 'cooling', 'disabled']);
export type KeyHealth = z.infer<typeof keyHealthSchema>;

/** Why a key is out of rotation. */
export const keyReasonSchema = z.enum(['rate_limited', 'quota_exhausted', 'rejected', 'admin_disabled']);
export type KeyReason = z.infer<typeof keyReasonSchema>;

/** Issue 22: one rate window as the key's provider stated it. */
export const learnedWindowSchema = z.object({
  /** The limit the provider states (null: it said only what is left). */
  limit: z.number().int().nonnegative().nullable(),
  /** What it said was left; null once its reset has passed. */
  remaining: z.number().int().nonnegative().nullable(),
  /** Epoch ms when that remaining stops applying; null once passed. */
  resetAt: z.number().nullable(),
  /** Epoch ms of the request that brought the observation. */
  observedAt: z.number(),
});
export type LearnedWindowStatus = z.infer<typeof learnedWindowSchema>;

/** Where a key's rpmLimit / tpmLimit comes from: configured, or the provider's stated limit (none configured, or a lower one). */
export const limitSourceSchema = z.enum(['configured', 'learned']);
export type LimitSource = z.infer<typeof limitSourceSchema>;

export const keyStatusSchema = z.object({
  fingerprint: z.string(),
  /** e.g. `sk-\u2026a1b2` (an ellipsis): enough to recognise a key, never enough to use it. */
  mask: z.string(),
  account: z.string().nullable(),
  status: keyHealthSchema,
  reason: keyReasonSchema.nullable(),
  /** Epoch ms when a cooling key returns; null when not cooling. */
  until: z.number().nullable(),
  requestsThisWindow: z.number().int().nonnegative(),
  rpmLimit: z.number().int().nonnegative(),
  tokensThisWindow: z.number().int().nonnegative(),
  tpmLimit: z.number().int().nonnegative(),
  /** Share of the tighter of RPM/TPM used in the current window, 0..100 (0 when unlimited). */
  percentUsed: z.number().nonnegative(),
  /** Issue 22: where rpmLimit / tpmLimit (the limits in force) come from. */
  rpmSource: limitSourceSchema.optional(),
  tpmSource: limitSourceSchema.optional(),
  /** Issue 22: what the provider stated for the key's account; null when nothing was learned. */
  learned: z.object({ requests: learnedWindowSchema.nullable(), tokens: learnedWindowSchema.nullable() }).nullable().optional(),
});
export type KeyStatus = z.infer<typeof keyStatusSchema>;

/** Issue 22: a user active in the pool's window, with their weighted fair share of its capacity. */
export const poolUserShareSchema = z.object({
  userId: z.string(),
  weight: z.number().int().positive(),
  requestsThisWindow: z.number().int().nonnegative(),
  /** Requests per window this user may count on while the pool is scarce: capacity * weight / active weights. */
  shareRpm: z.number().nonnegative(),
});
export type PoolUserShare = z.infer<typeof poolUserShareSchema>;

/** Issue 22: requests waiting for capacity, across every instance. */
export const poolQueueStatusSchema = z.object({
  length: z.number().int().nonnegative(),
  /** How long the oldest waiter has waited, ms; 0 when none waits. */
  oldestWaitMs: z.number().nonnegative(),
  maxLength: z.number().int().nonnegative(),
  maxWaitMs: z.number().int().nonnegative(),
});
export type PoolQueueStatus = z.infer<typeof poolQueueStatusSchema>;

export const providerPoolStatusSchema = z.object({
  provider: providerIdSchema,
  strategy: z.enum(['round-robin', 'least-loaded']),
  keys: z.array(keyStatusSchema),
  totals: z.object({
    keys: z.number().int(),
    ok: z.number().int(),
    cooling: z.number().int(),
    disabled: z.number().int(),
    requestsThisWindow: z.number().int(),
    /** Requests per minute the usable keys can still take (sum over distinct accounts). */
    capacityRpm: z.number().int(),
  }),
  /** Issue 22: the most active users of the window (at most 10), on pools with an rpm. */
  users: z.array(poolUserShareSchema).optional(),
  /** Issue 22: the wait queue, on pools that have one. */
  queue: poolQueueStatusSchema.optional(),
});
export type ProviderPoolStatus = z.infer<typeof providerPoolStatusSchema>;

export const poolStatusSchema = z.object({
  at: z.number(),
  windowMs: z.number(),
  providers: z.array(providerPoolStatusSchema),
});
export type PoolStatus = z.infer<typeof poolStatusSchema>;
