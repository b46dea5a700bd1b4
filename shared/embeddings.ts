import { z } from 'zod';
import { maxWaitMsSchema } from './chat';

/**
 * embeddings.create (issue 21): texts in, one vector per text out, from an embedding model of the
 * catalog (kind `embedding`), through the key pools and metered like a chat. The /v1/embeddings
 * endpoint speaks OpenAI's wire on top of the same call.
 */

/** OpenAI's limit of inputs per request; Keyrack holds every provider to it. */
export const MAX_EMBEDDING_INPUTS = 2048;
/** Bytes of text per input, at most: OpenAI's 8,192-token window is under 64 KiB of text. */
export const MAX_EMBEDDING_INPUT_BYTES = 64 * 1024;

const embeddingTextSchema = z
  .string()
  .min(1, 'an input must not be empty (the providers refuse empty strings)')
  .refine((text) => Buffer.byteLength(text, 'utf8') <= MAX_EMBEDDING_INPUT_BYTES, `an input is at most ${MAX_EMBEDDING_INPUT_BYTES} bytes of UTF-8`);

export const embeddingsCreateInputSchema = z.strictObject({
  /** A catalog id of kind `embedding` (`text-embedding-3-small`), or `provider/model`. */
  model: z.string().min(1),
  /** One text, or up to MAX_EMBEDDING_INPUTS of them (answered in order). */
  input: z.union([embeddingTextSchema, z.array(embeddingTextSchema).min(1, 'input holds at least one text').max(MAX_EMBEDDING_INPUTS, `input holds at most ${MAX_EMBEDDING_INPUTS} texts`)]),
  /** Fewer dimensions than the model's own, where the model allows it (text-embedding-3, gemini-embedding-001). */
  dimensions: z.number().int().min(1).max(65_536).optional(),
  /** The gateway's (issue 22): how long to wait for a key when every key is busy, ms (as a chat's). */
  maxWaitMs: maxWaitMsSchema.optional(),
});
export type EmbeddingsCreateInput = z.infer<typeof embeddingsCreateInputSchema>;

export const embeddingsCreateOutputSchema = z.object({
  /** The catalog id that served it. */
  model: z.string(),
  /** One vector per input, in input order. */
  embeddings: z.array(z.array(z.number())),
  usage: z.object({
    inputTokens: z.number().int().nonnegative(),
    /** True when the provider reported no token count (Gemini) and Keyrack estimated it. */
    estimated: z.boolean(),
  }),
  /** USD, markup included, as billed to the usage ledger. */
  costUsd: z.number().nonnegative(),
});
export type EmbeddingsCreateOutput = z.infer<typeof embeddingsCreateOutputSchema>;
