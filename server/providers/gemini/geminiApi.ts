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
        violations: z
          .array(
            z.object({
              quotaId: z.string().nullish(),
              quotaMetric: z.string().nullish(),
              // The quota's size ("10"), which learned limits read (issue 22).
              quotaValue: z.union([z.string(), z.number()]).nullish(),
            }),
          )
          .nullish(),
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

/**
 * One part of a candidate's content. Text (a thought summary when `thought`), or a function call,
 * which Gemini sends whole in one part (never argument fragments). `thoughtSignature` (Gemini 3)
 * is not read: Keyrack's conversation model has no place to carry it back.
 */
const geminiResponsePartSchema = z.object({
  text: z.string().nullish(),
  thought: z.boolean().nullish(),
  functionCall: z
    .object({
      name: z.string(),
      /** A JSON object; absent for a function without parameters. */
      args: z.record(z.string(), z.unknown()).nullish(),
      /** Optional: the Gemini API leaves it out on most models (Keyrack generates one then). */
      id: z.string().nullish(),
    })
    .nullish(),
});

export const geminiChunkSchema = z.object({
  candidates: z
    .array(
      z.object({
        content: z.object({ parts: z.array(geminiResponsePartSchema).nullish() }).nullish(),
        finishReason: z.string().nullish(),
      }),
    )
    .nullish(),
  usageMetadata: geminiUsageSchema.nullish(),
  promptFeedback: z.object({ blockReason: z.string().nullish() }).nullish(),
  /** Present on most answers; seeds the ids of function calls that come without one. */
  responseId: z.string().nullish(),
  error: geminiStatusSchema.nullish(),
});
export type GeminiChunk = z.infer<typeof geminiChunkSchema>;

/** The request parts Keyrack sends (ai.google.dev/api/caching#Part). */
export type GeminiRequestPart =
  | { text: string }
  /** Bytes of a data URL, base64 as the URL carries them. */
  | { inlineData: { mimeType: string; data: string } }
  /** An image by URL: Gemini fetches it. */
  | { fileData: { mimeType: string; fileUri: string } }
  /** `thoughtSignature`: see convertToGeminiRequest (Gemini 3 wants one on a turn's first call). */
  | { functionCall: { name: string; args: Record<string, unknown>; id?: string }; thoughtSignature?: string }
  /** `response` is the tool's JSON object, or `{ output: ... }` for anything else (Gemini's convention). */
  | { functionResponse: { name: string; response: Record<string, unknown>; id?: string } };

export interface GeminiFunctionDeclaration {
  name: string;
  description?: string;
  /** Full JSON Schema (the subset Gemini documents; see geminiJsonSchema.ts), rather than the OpenAPI-style `parameters`. */
  parametersJsonSchema?: Record<string, unknown>;
}

/** AUTO / NONE / ANY as OpenAI's auto / none / required; VALIDATED: AUTO with calls held to their schema (strict tools). */
export type GeminiFunctionCallingMode = 'AUTO' | 'ANY' | 'NONE' | 'VALIDATED';

export interface GeminiGenerationConfig {
  maxOutputTokens?: number;
  temperature?: number;
  topP?: number;
  stopSequences?: string[];
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  responseMimeType?: 'application/json';
  responseJsonSchema?: Record<string, unknown>;
  thinkingConfig?: { thinkingBudget: number; includeThoughts?: boolean };
}

export interface GeminiGenerateContentRequestBody {
  contents: { role: 'user' | 'model'; parts: GeminiRequestPart[] }[];
  systemInstruction?: { parts: { text: string }[] };
  tools?: { functionDeclarations: GeminiFunctionDeclaration[] }[];
  toolConfig?: { functionCallingConfig: { mode: GeminiFunctionCallingMode; allowedFunctionNames?: string[] } };
  generationConfig?: GeminiGenerationConfig;
}
