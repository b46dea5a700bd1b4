import { z } from 'zod';

/**
 * OpenAI's embeddings answer (platform.openai.com/docs/api-reference/embeddings/object), which
 * Mistral copies: only what Keyrack reads. Vectors are asked for as floats (the gateway encodes
 * base64 itself when its client asks), so `embedding` is always an array here.
 */
export const openaiEmbeddingsAnswerSchema = z.object({
  data: z.array(z.object({ index: z.number().int().nonnegative(), embedding: z.array(z.number()) })),
  usage: z.object({ prompt_tokens: z.number().int().nonnegative(), total_tokens: z.number().int().nonnegative().optional() }).nullish(),
});
