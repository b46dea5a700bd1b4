import { z } from 'zod';

/**
 * Gemini's `models/{model}:batchEmbedContents` answer (ai.google.dev/api/embeddings):
 * `{ embeddings: [{ values }] }`, one per request, in order. It carries no token count.
 */
export const geminiBatchEmbedAnswerSchema = z.object({
  embeddings: z.array(z.object({ values: z.array(z.number()) })),
});

/** Gemini takes at most this many requests in one batchEmbedContents call. */
export const GEMINI_EMBED_BATCH = 100;
