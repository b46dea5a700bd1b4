import { z } from 'zod';
import { providerIdSchema } from './providers';

/** Upper bounds that keep one request from exhausting memory before the prompt limits apply. */
export const MAX_MESSAGES = 500;
export const MAX_MESSAGE_CHARS = 200_000;

export const chatRoleSchema = z.enum(['system', 'user', 'assistant']);
export type ChatRole = z.infer<typeof chatRoleSchema>;

export const chatMessageSchema = z.object({
  role: chatRoleSchema,
  content: z.string().max(MAX_MESSAGE_CHARS),
});
export type ChatMessage = z.infer<typeof chatMessageSchema>;

/**
 * A model is named plainly (`gpt-4o`, resolved through the model list)
 * or as `provider/model` (`anthropic/claude-sonnet-4`).
 */
export const modelNameSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/, 'model names use letters, digits and . _ : / @ -');

export const chatRequestSchema = z.object({
  model: modelNameSchema,
  messages: z.array(chatMessageSchema).min(1).max(MAX_MESSAGES),
  maxTokens: z.number().int().positive().max(1_000_000).optional(),
  temperature: z.number().min(0).max(2).optional(),
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

export const finishReasonSchema = z.enum(['stop', 'length', 'content_filter', 'tool_calls', 'error', 'aborted', 'other']);
export type FinishReason = z.infer<typeof finishReasonSchema>;

/** Token counts as the provider reported them, normalized. */
export const tokenUsageSchema = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  /** Input tokens served from the provider's prompt cache (billed at a discount by most providers). */
  cachedInputTokens: z.number().int().nonnegative().default(0),
  /** Reasoning tokens, already included in outputTokens (billed as output). */
  reasoningTokens: z.number().int().nonnegative().default(0),
});
export type TokenUsage = z.infer<typeof tokenUsageSchema>;

/**
 * Why a request failed, as the client needs to act on it. Upstream details stay in the logs;
 * these codes are what the UI and the retry logic read.
 */
export const gatewayErrorCodeSchema = z.enum([
  'rate_limited', // every key busy: retry after retryAfterMs
  'quota_exhausted', // every key out of money or daily quota
  'no_keys', // no usable key for the provider (all rejected or disabled)
  'bad_request', // the caller's fault; never retried
  'upstream_error', // provider failed (5xx, timeout, network) after all attempts
  'stream_interrupted', // the answer broke after text was already sent
  'prompt_too_long',
  'budget_exceeded',
  'shutting_down',
  'not_found',
  'internal',
  'store_unavailable', // the shared store (Redis) is not answering: retry after retryAfterMs; not the provider's fault
]);
export type GatewayErrorCode = z.infer<typeof gatewayErrorCodeSchema>;

export const costSchema = z.object({
  /** Currency: US dollars. Includes the configured markup. */
  estimatedUsd: z.number().nonnegative(),
  actualUsd: z.number().nonnegative().optional(),
});

/** The one normalized stream every provider's answer is turned into. */
export const streamEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('start'),
    provider: providerIdSchema,
    model: z.string(),
    /** Fingerprint of the key that serves the request (never the key itself). */
    keyFingerprint: z.string(),
  }),
  z.object({ type: z.literal('warning'), code: z.literal('prompt_over_soft_limit'), message: z.string(), promptTokens: z.number() }),
  z.object({ type: z.literal('delta'), text: z.string() }),
  z.object({ type: z.literal('usage'), usage: tokenUsageSchema, cost: costSchema.optional() }),
  z.object({ type: z.literal('done'), finishReason: finishReasonSchema }),
  z.object({
    type: z.literal('error'),
    code: gatewayErrorCodeSchema,
    message: z.string(),
    retryAfterMs: z.number().int().nonnegative().optional(),
  }),
]);
export type StreamEvent = z.infer<typeof streamEventSchema>;
export type StreamEventType = StreamEvent['type'];
