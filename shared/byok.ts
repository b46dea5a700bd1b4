import { z } from 'zod';
import { providerIdSchema } from './providers';

/** Bring-your-own-key: a user's own provider keys, stored encrypted, shown masked. */

export const byokApiKeySchema = z
  .string()
  .min(8, 'an API key has at least 8 characters')
  .max(400, 'an API key has at most 400 characters')
  .regex(/^\S+$/, 'an API key contains no white space');

export const addByokKeyInputSchema = z.object({
  provider: providerIdSchema,
  apiKey: byokApiKeySchema,
  label: z.string().trim().max(60).optional(),
});
export type AddByokKeyInput = z.infer<typeof addByokKeyInputSchema>;

export const byokKeyIdSchema = z.string().uuid();
export const byokKeyRefSchema = z.object({ id: byokKeyIdSchema });

/** What testing a key found. `corrupt`: the stored ciphertext failed authentication; the key was not used. */
export const byokTestResultSchema = z.enum(['valid', 'rejected', 'unreachable', 'corrupt']);
export type ByokTestResult = z.infer<typeof byokTestResultSchema>;

/** `corrupt`: the record no longer decrypts (tampered, or sealed under a key the gateway no longer has); it is never used. */
export const byokKeyStatusSchema = z.enum(['ok', 'corrupt']);
export type ByokKeyStatus = z.infer<typeof byokKeyStatusSchema>;

/** A stored key as its owner sees it: never the key, only a mask. */
export const byokKeySchema = z.object({
  id: z.string(),
  provider: providerIdSchema,
  label: z.string().nullable(),
  /** e.g. `sk-\u2026a1b2` (an ellipsis). */
  mask: z.string(),
  /** ISO 8601. */
  createdAt: z.string(),
  lastTest: z.object({ result: byokTestResultSchema, at: z.string() }).nullable(),
  status: byokKeyStatusSchema,
});
export type ByokKey = z.infer<typeof byokKeySchema>;

export const byokSettingsSchema = z.object({
  /** When the user's own keys for a provider cannot serve, use the shared pool (billed) instead of failing. */
  fallbackToSharedPool: z.boolean(),
});
export type ByokSettings = z.infer<typeof byokSettingsSchema>;
export const DEFAULT_BYOK_SETTINGS: ByokSettings = { fallbackToSharedPool: true };
