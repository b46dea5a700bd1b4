import { z } from 'zod';

/**
 * The OpenAI Chat Completions wire format, as far as Keyrack reads it, with the usage quirks of
 * the providers that copy it. Unknown fields are ignored; only what we use is checked.
 */

export const openaiUsageSchema = z.object({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  prompt_tokens_details: z.object({ cached_tokens: z.number().int().nonnegative().nullish() }).nullish(),
  completion_tokens_details: z.object({ reasoning_tokens: z.number().int().nonnegative().nullish() }).nullish(),
  /** DeepSeek's name for prompt-cache hits. */
  prompt_cache_hit_tokens: z.number().int().nonnegative().nullish(),
  /** Kimi's name for prompt-cache hits. */
  cached_tokens: z.number().int().nonnegative().nullish(),
});
export type OpenAIUsage = z.infer<typeof openaiUsageSchema>;

export const openaiErrorObjectSchema = z.object({
  message: z.string().nullish(),
  type: z.string().nullish(),
  code: z.union([z.string(), z.number()]).nullish(),
  param: z.string().nullish(),
});

/**
 * Error bodies: `{ "error": { message, type, code } }` (OpenAI, Groq, xAI, DeepSeek, Kimi),
 * `{ "object": "error", message, type, code }` (Mistral), or `{ "error": "text" }`.
 */
export const openaiErrorBodySchema = z.object({
  error: z.union([openaiErrorObjectSchema, z.string()]).nullish(),
  message: z.string().nullish(),
  type: z.string().nullish(),
  code: z.union([z.string(), z.number()]).nullish(),
  detail: z.unknown().optional(),
});
export type OpenAIErrorBody = z.infer<typeof openaiErrorBodySchema>;

/** Fields a streamed chunk and a one-piece answer share, per choice and at the top. */
const choiceFields = {
  finish_reason: z.string().nullish(),
  /** Kimi reports usage here, in the last chunk's choice (or the answer's). */
  usage: openaiUsageSchema.nullish(),
};
const answerFields = {
  /** OpenAI (with stream_options.include_usage), DeepSeek, xAI, Mistral, Perplexity (cumulative). */
  usage: openaiUsageSchema.nullish(),
  /** Groq. */
  x_groq: z.object({ usage: openaiUsageSchema.nullish() }).nullish(),
  /** An error that arrives inside a 200 stream or answer. */
  error: z.union([openaiErrorObjectSchema, z.string()]).nullish(),
};

/** A streamed tool call fragment: the first of an index has id, type and name; later ones argument text. */
const toolCallDeltaSchema = z.object({
  /** Absent from some servers' one-chunk calls (the call's place in the list then). */
  index: z.number().int().nonnegative().nullish(),
  id: z.string().nullish(),
  function: z.object({ name: z.string().nullish(), arguments: z.string().nullish() }).nullish(),
});

/**
 * Thinking text: `reasoning_content` (DeepSeek, Kimi, xAI's grok-3-mini, vLLM and others) or
 * `reasoning` (Groq with reasoning_format parsed, OpenRouter-style servers).
 */
const reasoningFields = { reasoning_content: z.string().nullish(), reasoning: z.string().nullish() };

export const openaiChunkSchema = z.object({
  choices: z
    .array(z.object({ delta: z.object({ content: z.string().nullish(), tool_calls: z.array(toolCallDeltaSchema).nullish(), ...reasoningFields }).nullish(), ...choiceFields }))
    .nullish(),
  ...answerFields,
});
export type OpenAIChunk = z.infer<typeof openaiChunkSchema>;

/** A one-piece answer (`stream: false`): the same fields, with `message` for `delta`. */
export const openaiCompletionSchema = z.object({
  choices: z
    .array(
      z.object({
        message: z
          .object({
            content: z.string().nullish(),
            tool_calls: z.array(z.object({ id: z.string().nullish(), function: z.object({ name: z.string(), arguments: z.string().nullish() }) })).nullish(),
            ...reasoningFields,
          })
          .nullish(),
        ...choiceFields,
      }),
    )
    .nullish(),
  ...answerFields,
});
export type OpenAICompletion = z.infer<typeof openaiCompletionSchema>;

export type OpenAIContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string; detail?: 'auto' | 'low' | 'high' } };
export interface OpenAIToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type OpenAIRequestMessage =
  | { role: 'system' | 'developer'; content: string | { type: 'text'; text: string }[] }
  | { role: 'user'; content: string | OpenAIContentPart[] }
  | { role: 'assistant'; content: string | null; tool_calls?: OpenAIToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string | { type: 'text'; text: string }[] };

/** The request Keyrack sends (the same wire /v1 reads: server/gateway/openai/openaiWire.ts). */
export interface OpenAIChatRequestBody {
  model: string;
  messages: OpenAIRequestMessage[];
  stream: boolean;
  stream_options?: { include_usage: true };
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  stop?: string[];
  seed?: number;
  /** Mistral's name for `seed`. */
  random_seed?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  tools?: { type: 'function'; function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean } }[];
  tool_choice?: 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };
  parallel_tool_calls?: boolean;
  response_format?:
    | { type: 'text' | 'json_object' }
    | { type: 'json_schema'; json_schema: { name: string; description?: string; schema: Record<string, unknown>; strict?: boolean } };
  reasoning_effort?: string;
}
