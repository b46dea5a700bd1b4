import { z } from 'zod';

/** The Anthropic Messages API wire format (streamed and one-piece), as far as Keyrack reads it. */

export const ANTHROPIC_VERSION = '2023-06-01';

export const anthropicUsageSchema = z.object({
  input_tokens: z.number().int().nonnegative().nullish(),
  output_tokens: z.number().int().nonnegative().nullish(),
  cache_read_input_tokens: z.number().int().nonnegative().nullish(),
  cache_creation_input_tokens: z.number().int().nonnegative().nullish(),
});
export type AnthropicUsage = z.infer<typeof anthropicUsageSchema>;

export const anthropicErrorSchema = z.object({
  type: z.string().nullish(),
  message: z.string().nullish(),
  /** Spend caps say which in `details.error_code` (`enforced_spend_limit_reached`). */
  details: z.object({ error_code: z.string().nullish() }).nullish(),
});

/** `{ "type": "error", "error": { "type": "rate_limit_error", "message": "..." }, "request_id": "..." }` */
export const anthropicErrorBodySchema = z.object({ error: anthropicErrorSchema.nullish() });

export const anthropicStreamEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('message_start'), message: z.object({ usage: anthropicUsageSchema.nullish() }) }),
  z.object({
    type: z.literal('content_block_delta'),
    delta: z.object({ type: z.string(), text: z.string().nullish() }),
  }),
  z.object({
    type: z.literal('message_delta'),
    delta: z.object({ stop_reason: z.string().nullish() }),
    usage: anthropicUsageSchema.nullish(),
  }),
  z.object({ type: z.literal('message_stop') }),
  z.object({ type: z.literal('content_block_start') }),
  z.object({ type: z.literal('content_block_stop') }),
  z.object({ type: z.literal('ping') }),
  z.object({ type: z.literal('error'), error: anthropicErrorSchema }),
]);
export type AnthropicStreamEvent = z.infer<typeof anthropicStreamEventSchema>;

/** A one-piece answer (`stream: false`): a Message. */
export const anthropicMessageSchema = z.object({
  content: z.array(z.object({ type: z.string(), text: z.string().nullish() })).nullish(),
  stop_reason: z.string().nullish(),
  usage: anthropicUsageSchema.nullish(),
});

export interface AnthropicMessagesRequestBody {
  model: string;
  max_tokens: number;
  system?: string;
  messages: { role: 'user' | 'assistant'; content: string }[];
  stream: boolean;
  temperature?: number;
}
