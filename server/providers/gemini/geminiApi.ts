import { z } from 'zod';

/** The Gemini API (generativelanguage.googleapis.com v1beta) wire format, as far as Keyrack reads it. */

export const geminiUsageSchema = z.object({
  promptTokenCount: z.number().int().nonnegative().nullish(),
  candidatesTokenCount: z.number().int().nonnegative().nullish(),
  cachedContentTokenCount: z.number().int().nonnegative().nullish(),
  /** Thinking tokens: billed as output, but not part of candidatesTokenCount. */
  thoughtsTokenCount: z.number().int().nonnegative().nullish(),
  totalTokenCount: z.number().int().nonnegative().nullish(),
});
export type GeminiUsage = z.infer<typeof geminiUsageSchema>;

/** google.rpc.Status with its typed details (ErrorInfo, RetryInfo, QuotaFailure, Help, ...). */
export const geminiStatusSchema = z.object({
  code: z.number().int().nullish(),
  message: z.string().nullish(),
  status: z.string().nullish(),
  details: z
    .array(
      z.object({
        '@type': z.string().nullish(),
        reason: z.string().nullish(),
        retryDelay: z.string().nullish(),
        violations: z.array(z.object({ quotaId: z.string().nullish(), quotaMetric: z.string().nullish() })).nullish(),
        fieldViolations: z.array(z.object({ field: z.string().nullish() })).nullish(),
      }),
    )
    .nullish(),
});
export type GeminiStatus = z.infer<typeof geminiStatusSchema>;

/** `{ "error": {...} }`, or the same wrapped in an array (non-SSE stream errors). */
export const geminiErrorBodySchema = z.union([
  z.object({ error: geminiStatusSchema }),
  z.array(z.object({ error: geminiStatusSchema })).min(1),
]);

export const geminiChunkSchema = z.object({
  candidates: z
    .array(
      z.object({
        content: z.object({ parts: z.array(z.object({ text: z.string().nullish(), thought: z.boolean().nullish() })).nullish() }).nullish(),
        finishReason: z.string().nullish(),
      }),
    )
    .nullish(),
  usageMetadata: geminiUsageSchema.nullish(),
  promptFeedback: z.object({ blockReason: z.string().nullish() }).nullish(),
  error: geminiStatusSchema.nullish(),
});
export type GeminiChunk = z.infer<typeof geminiChunkSchema>;

export interface GeminiGenerateContentRequestBody {
  contents: { role: 'user' | 'model'; parts: { text: string }[] }[];
  systemInstruction?: { parts: { text: string }[] };
  generationConfig?: { maxOutputTokens?: number; temperature?: number };
}
