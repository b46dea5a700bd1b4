import { z } from 'zod';
import type { TokenUsage } from '../../../shared';

/** The Anthropic Messages API wire format (streamed and one-piece), as far as Keyrack reads it. */

export const ANTHROPIC_VERSION = '2023-06-01';

export const anthropicUsageSchema = z.object({
  input_tokens: z.number().int().nonnegative().nullish(),
  output_tokens: z.number().int().nonnegative().nullish(),
  cache_read_input_tokens: z.number().int().nonnegative().nullish(),
  cache_creation_input_tokens: z.number().int().nonnegative().nullish(),
  /** Thinking tokens, already counted in output_tokens (newer API answers only). */
  output_tokens_details: z.object({ thinking_tokens: z.number().int().nonnegative().nullish() }).nullish(),
});
export type AnthropicUsage = z.infer<typeof anthropicUsageSchema>;

/**
 * Anthropic's usage as the ledger counts it (the adapter's chat and the /v1/messages relay
 * alike): input_tokens excludes cache reads and cache writes, and all three are input the model
 * read; output_tokens includes thinking.
 */
export function tokenUsageOf(usage: AnthropicUsage): TokenUsage {
  const cacheRead = usage.cache_read_input_tokens ?? 0;
  return {
    inputTokens: (usage.input_tokens ?? 0) + cacheRead + (usage.cache_creation_input_tokens ?? 0),
    outputTokens: usage.output_tokens ?? 0,
    cachedInputTokens: cacheRead,
    reasoningTokens: usage.output_tokens_details?.thinking_tokens ?? 0,
  };
}

export const anthropicErrorSchema = z.object({
  type: z.string().nullish(),
  message: z.string().nullish(),
  /** Spend caps say which in `details.error_code` (`enforced_spend_limit_reached`). */
  details: z.object({ error_code: z.string().nullish() }).nullish(),
});

/** `{ "type": "error", "error": { "type": "rate_limit_error", "message": "..." }, "request_id": "..." }` */
export const anthropicErrorBodySchema = z.object({ error: anthropicErrorSchema.nullish() });

/** A content block as a stream opens it: text, thinking or tool_use (the ones Keyrack reads; others pass unread). */
export const anthropicBlockStartSchema = z.object({
  type: z.string(),
  /** tool_use: the call's id (`toolu_...`) and the tool's name; its input arrives as input_json_delta fragments. */
  id: z.string().nullish(),
  name: z.string().nullish(),
});

export const anthropicStreamEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('message_start'), message: z.object({ usage: anthropicUsageSchema.nullish() }) }),
  z.object({
    type: z.literal('content_block_delta'),
    index: z.number().int().nonnegative(),
    /** text_delta (text), input_json_delta (partial_json), thinking_delta (thinking), signature_delta (signature, not read). */
    delta: z.object({ type: z.string(), text: z.string().nullish(), partial_json: z.string().nullish(), thinking: z.string().nullish() }),
  }),
  z.object({
    type: z.literal('message_delta'),
    delta: z.object({ stop_reason: z.string().nullish() }),
    usage: anthropicUsageSchema.nullish(),
  }),
  z.object({ type: z.literal('message_stop') }),
  z.object({ type: z.literal('content_block_start'), index: z.number().int().nonnegative(), content_block: anthropicBlockStartSchema }),
  z.object({ type: z.literal('content_block_stop') }),
  z.object({ type: z.literal('ping') }),
  z.object({ type: z.literal('error'), error: anthropicErrorSchema }),
]);
export type AnthropicStreamEvent = z.infer<typeof anthropicStreamEventSchema>;

/** A one-piece answer (`stream: false`): a Message. */
export const anthropicMessageSchema = z.object({
  content: z
    .array(
      z.object({
        type: z.string(),
        text: z.string().nullish(),
        thinking: z.string().nullish(),
        id: z.string().nullish(),
        name: z.string().nullish(),
        /** tool_use: the arguments as a JSON value (an object). */
        input: z.unknown().optional(),
      }),
    )
    .nullish(),
  stop_reason: z.string().nullish(),
  usage: anthropicUsageSchema.nullish(),
});

/** Request side (docs "Messages"): what convertToAnthropicRequest writes. Types only: Keyrack writes it, never reads it. */
export type AnthropicImageSource =
  | { type: 'base64'; media_type: 'image/png' | 'image/jpeg' | 'image/gif' | 'image/webp'; data: string }
  | { type: 'url'; url: string };

export type AnthropicContentBlock =
  | { type: 'text'; text: string }
  | { type: 'image'; source: AnthropicImageSource }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: 'tool_result'; tool_use_id: string; content: string };

export interface AnthropicMessageParam {
  role: 'user' | 'assistant';
  /** A string for a text-only turn (what plain chat has always sent), blocks otherwise. */
  content: string | AnthropicContentBlock[];
}

export interface AnthropicTool {
  name: string;
  description?: string;
  input_schema: Record<string, unknown>;
  strict?: boolean;
}

export type AnthropicToolChoice =
  | { type: 'auto'; disable_parallel_tool_use?: boolean }
  | { type: 'any'; disable_parallel_tool_use?: boolean }
  | { type: 'tool'; name: string; disable_parallel_tool_use?: boolean }
  | { type: 'none' };

export type AnthropicThinking = { type: 'enabled'; budget_tokens: number } | { type: 'adaptive' };

export interface AnthropicMessagesRequestBody {
  model: string;
  max_tokens: number;
  system?: string;
  messages: AnthropicMessageParam[];
  stream: boolean;
  temperature?: number;
  top_p?: number;
  stop_sequences?: string[];
  tools?: AnthropicTool[];
  tool_choice?: AnthropicToolChoice;
  thinking?: AnthropicThinking;
  /** Structured outputs (GA, no beta header) and adaptive thinking's effort. */
  output_config?: { format?: { type: 'json_schema'; schema: Record<string, unknown> }; effort?: 'low' | 'medium' | 'high' };
}
