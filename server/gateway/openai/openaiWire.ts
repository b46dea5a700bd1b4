import { z } from 'zod';
import type { ChatRequest, FinishReason, GatewayErrorCode, TokenUsage } from '../../../shared';

/**
 * OpenAI's Chat Completions wire as the /v1 endpoint speaks it: the request we accept (unknown
 * fields are tolerated and dropped, as OpenAI clients send many), and the shapes we answer with.
 */

const textPartSchema = z.object({ type: z.literal('text'), text: z.string() });

export const openaiChatRequestSchema = z.object({
  model: z.string().min(1),
  messages: z
    .array(
      z.object({
        // `developer` is OpenAI's newer name for `system`.
        role: z.enum(['system', 'developer', 'user', 'assistant']),
        content: z.union([z.string(), z.array(textPartSchema)]).nullable(),
      }),
    )
    .min(1),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  n: z.literal(1).nullish(),
});
export type OpenAIChatRequest = z.infer<typeof openaiChatRequestSchema>;

export function toChatRequest(body: OpenAIChatRequest): ChatRequest {
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
  return {
    model: body.model,
    messages: body.messages.map((m) => ({
      role: m.role === 'developer' ? 'system' : m.role,
      content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join(''),
    })),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(body.temperature !== undefined && body.temperature !== null ? { temperature: body.temperature } : {}),
  };
}

export type OpenAIFinishReason = 'stop' | 'length' | 'content_filter' | 'tool_calls';

export function openaiFinishReason(reason: FinishReason): OpenAIFinishReason {
  return reason === 'length' || reason === 'content_filter' || reason === 'tool_calls' ? reason : 'stop';
}

export function openaiUsage(usage: TokenUsage) {
  return {
    prompt_tokens: usage.inputTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.inputTokens + usage.outputTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedInputTokens },
    completion_tokens_details: { reasoning_tokens: usage.reasoningTokens },
  };
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function openaiError(message: string, type: string, code: string | null = null, param: string | null = null): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

/** HTTP status and OpenAI error type for each gateway code. */
export const OPENAI_ERROR_OF: Record<GatewayErrorCode, { status: number; type: string }> = {
  rate_limited: { status: 429, type: 'rate_limit_error' },
  quota_exhausted: { status: 429, type: 'insufficient_quota' },
  no_keys: { status: 503, type: 'server_error' },
  bad_request: { status: 400, type: 'invalid_request_error' },
  upstream_error: { status: 502, type: 'server_error' },
  stream_interrupted: { status: 502, type: 'server_error' },
  prompt_too_long: { status: 400, type: 'invalid_request_error' },
  budget_exceeded: { status: 429, type: 'insufficient_quota' },
  shutting_down: { status: 503, type: 'server_error' },
  not_found: { status: 404, type: 'invalid_request_error' },
  internal: { status: 500, type: 'server_error' },
  store_unavailable: { status: 503, type: 'server_error' },
};
