import { z } from 'zod';
import { providerIdSchema } from './providers';

/**
 * Business configuration: limits, pricing and the model list. It lives in the store (admins
 * change it at run time); secrets never do (they live in the environment).
 * Field names follow the stored documents (snake_case), so admin UI, store and defaults file agree.
 */

/** Token counts: whole, positive, and small enough that no prompt limit is silly. */
const tokenCountSchema = z.number().int().min(1).max(10_000_000);
/** USD per 1M tokens. */
const priceSchema = z.number().min(0).max(10_000);

export const businessSettingsSchema = z
  .object({
    prompt_soft_limit: tokenCountSchema,
    prompt_hard_limit: tokenCountSchema,
    expected_output_tokens: tokenCountSchema,
    markup_percentage: z.number().min(0).max(1_000),
  })
  .refine((c) => c.prompt_hard_limit >= c.prompt_soft_limit, {
    message: 'prompt_hard_limit must be at least prompt_soft_limit',
    path: ['prompt_hard_limit'],
  });
export type BusinessSettings = z.infer<typeof businessSettingsSchema>;
export type BusinessSettingKey = keyof BusinessSettings;
export const BUSINESS_SETTING_KEYS = ['prompt_soft_limit', 'prompt_hard_limit', 'expected_output_tokens', 'markup_percentage'] as const satisfies readonly BusinessSettingKey[];

/** One setting changed at a time; cross-field rules (hard >= soft) are checked against the rest. */
export const setBusinessSettingInputSchema = z.discriminatedUnion('key', [
  z.object({ key: z.literal('prompt_soft_limit'), value: tokenCountSchema }),
  z.object({ key: z.literal('prompt_hard_limit'), value: tokenCountSchema }),
  z.object({ key: z.literal('expected_output_tokens'), value: tokenCountSchema }),
  z.object({ key: z.literal('markup_percentage'), value: z.number().min(0).max(1_000) }),
]);
export type SetBusinessSettingInput = z.infer<typeof setBusinessSettingInputSchema>;

/** Catalog ids: what clients put in `model`. No slash: `provider/model` is the qualified form. */
export const modelIdSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, 'model ids use letters, digits and . _ : @ - (no slash)');

/**
 * What a model can take, per the provider's public docs (set in defaults.json, edited by admins):
 * a request that needs one the model lacks is refused (400 naming the field) before any upstream
 * call, and a fallback lacking it is skipped. `json_schema` covers both JSON response formats.
 */
export const modelCapabilitiesSchema = z.object({
  tools: z.boolean(),
  vision: z.boolean(),
  json_schema: z.boolean(),
  reasoning: z.boolean(),
});
export type ModelCapabilities = z.infer<typeof modelCapabilitiesSchema>;
/** Plain text chat only: what a model without a record can do (every model could before issue 20). */
export const NO_CAPABILITIES: ModelCapabilities = Object.freeze({ tools: false, vision: false, json_schema: false, reasoning: false });

/**
 * What a model does (issue 21): `chat` (/v1/chat/completions, chat.*) or `embedding`
 * (/v1/embeddings, embeddings.create). A request on a model of the other kind is a 400 naming
 * `model`. Absent in a stored entry: chat (every model was one before issue 21).
 */
export const MODEL_KINDS = ['chat', 'embedding'] as const;
export const modelKindSchema = z.enum(MODEL_KINDS);
export type ModelKind = z.infer<typeof modelKindSchema>;

/**
 * An embedding model's vectors (issue 21): their size, and whether a request may ask for fewer
 * dimensions (`dimensions` on /v1/embeddings; text-embedding-3 and gemini-embedding-001 can,
 * mistral-embed cannot). Absent: the gateway leaves the check to the provider.
 */
export const embeddingSpecSchema = z.object({
  dimensions: z.number().int().min(1).max(65_536),
  adjustable_dimensions: z.boolean(),
});
export type EmbeddingSpec = z.infer<typeof embeddingSpecSchema>;

export const modelEntrySchema = z.object({
  id: modelIdSchema,
  provider: providerIdSchema,
  display_name: z.string().trim().min(1).max(80),
  /** The provider's own model id, when it differs from `id`. */
  upstream_model: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/, 'upstream model ids use letters, digits and . _ : / @ -')
    .optional(),
  input_price: priceSchema,
  output_price: priceSchema,
  is_active: z.boolean(),
  /** Catalog ids tried in order when this model's provider cannot serve. */
  fallbacks: z.array(modelIdSchema).max(5).default([]),
  /**
   * Absent (an entry stored before issue 20, an upsert without it): the shipped defaults.json's
   * for the same id when it has that model, else NO_CAPABILITIES (BusinessConfig fills it in).
   */
  capabilities: modelCapabilitiesSchema.default(NO_CAPABILITIES),
  kind: modelKindSchema.default('chat'),
  embedding: embeddingSpecSchema.optional(),
});
export type ModelEntry = z.infer<typeof modelEntrySchema>;
export type ModelEntryInput = z.input<typeof modelEntrySchema>;

export const upsertModelInputSchema = modelEntrySchema;
export const setModelActiveInputSchema = z.object({ id: modelIdSchema, is_active: z.boolean() });
export type SetModelActiveInput = z.infer<typeof setModelActiveInputSchema>;

/** The whole of it, as `getConfig()` returns it and as the defaults file is written. */
export const businessConfigSchema = z.object({
  settings: businessSettingsSchema,
  models: z.array(modelEntrySchema),
});
export type BusinessConfigDocument = z.infer<typeof businessConfigSchema>;
