import type { OpenAICompletion, OpenAIUsage } from './openaiChatApi';

/**
 * The two shapes nearly every OpenAI-compatible answer has, recognised with typeof checks alone:
 * zod over every streamed chunk was ~5% of the gateway's CPU at 20,000 chunks/s, over every
 * one-piece answer ~2% at full load (issue #8). Each function says undefined for anything else,
 * which then goes through the zod schema (openaiChatApi.ts) and is read exactly as before; a
 * property test checks that what they accept, the schema accepts too.
 */

export interface PlainChoice {
  delta?: { content?: string | null } | null;
  finish_reason?: string | null;
}

/**
 * The common streamed chunk, `{"choices":[{"delta":{"content":"..."},"finish_reason":null}], ...}`.
 * Undefined for usage, errors, several choices, tool calls, reasoning text or any unexpected
 * type (openaiChunkSchema's).
 */
export function plainDeltaChunk(raw: unknown): PlainChoice | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const chunk = raw as { choices?: unknown; usage?: unknown; x_groq?: unknown; error?: unknown };
  if (chunk.usage != null || chunk.x_groq != null || chunk.error != null) return undefined;
  const choices = chunk.choices;
  if (!Array.isArray(choices) || choices.length !== 1) return undefined;
  const choice = choices[0] as { delta?: unknown; finish_reason?: unknown; usage?: unknown } | null;
  if (typeof choice !== 'object' || choice === null || Array.isArray(choice) || choice.usage != null) return undefined;
  const finish = choice.finish_reason;
  if (finish != null && typeof finish !== 'string') return undefined;
  const delta = choice.delta as { content?: unknown; tool_calls?: unknown; reasoning_content?: unknown; reasoning?: unknown } | null | undefined;
  if (delta != null) {
    if (typeof delta !== 'object' || Array.isArray(delta)) return undefined;
    if (delta.content != null && typeof delta.content !== 'string') return undefined;
    // Tool calls and thinking text are read by the schema (rare next to text chunks).
    if (delta.tool_calls != null || delta.reasoning_content != null || delta.reasoning != null) return undefined;
  }
  return choice as PlainChoice;
}

/**
 * The common one-piece answer, `{"choices":[{"message":{"content":"..."},"finish_reason":"stop"}],
 * "usage":{...}}`. Undefined for errors, several choices, Groq's or Kimi's usage places or any
 * unexpected type (openaiCompletionSchema's).
 */
export function plainAnswer(raw: unknown): OpenAICompletion | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const answer = raw as { choices?: unknown; usage?: unknown; x_groq?: unknown; error?: unknown };
  if (answer.x_groq != null || answer.error != null) return undefined;
  if (answer.usage != null && !isPlainUsage(answer.usage)) return undefined;
  const choices = answer.choices;
  if (!Array.isArray(choices) || choices.length !== 1) return undefined;
  const choice = choices[0] as { message?: unknown; finish_reason?: unknown; usage?: unknown } | null;
  if (typeof choice !== 'object' || choice === null || Array.isArray(choice) || choice.usage != null) return undefined;
  if (choice.finish_reason != null && typeof choice.finish_reason !== 'string') return undefined;
  const message = choice.message as { content?: unknown; tool_calls?: unknown; reasoning_content?: unknown; reasoning?: unknown } | null | undefined;
  if (message != null) {
    if (typeof message !== 'object' || Array.isArray(message)) return undefined;
    if (message.content != null && typeof message.content !== 'string') return undefined;
    if (message.tool_calls != null || message.reasoning_content != null || message.reasoning != null) return undefined;
  }
  return raw as OpenAICompletion;
}

/** What openaiUsageSchema accepts, for the fields convertOpenAIUsage reads (false sends it to the schema). */
function isPlainUsage(raw: unknown): raw is OpenAIUsage {
  if (typeof raw !== 'object' || Array.isArray(raw)) return false;
  const usage = raw as Record<string, unknown>;
  if (!isCount(usage.prompt_tokens) || !isCount(usage.completion_tokens)) return false;
  if (!isOptionalCount(usage.prompt_cache_hit_tokens) || !isOptionalCount(usage.cached_tokens)) return false;
  return isOptionalDetail(usage.prompt_tokens_details, 'cached_tokens') && isOptionalDetail(usage.completion_tokens_details, 'reasoning_tokens');
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isOptionalCount(value: unknown): boolean {
  return value == null || isCount(value);
}

function isOptionalDetail(value: unknown, field: string): boolean {
  if (value == null) return true;
  return typeof value === 'object' && !Array.isArray(value) && isOptionalCount((value as Record<string, unknown>)[field]);
}
