import type { TokenUsage } from '../../../shared';
import { anthropicUsageSchema, type AnthropicUsage } from '../../providers/anthropic/anthropicMessagesApi';

/** Copies the fields of an Anthropic `usage` object that are set onto `into` (message_delta's are cumulative: later wins). */
export function mergeUsage(into: AnthropicUsage, raw: unknown): void {
  if (raw === undefined || raw === null) return;
  const parsed = anthropicUsageSchema.safeParse(raw);
  if (!parsed.success) return;
  for (const [k, v] of Object.entries(parsed.data)) if (v !== null && v !== undefined) (into as Record<string, unknown>)[k] = v;
}

/**
 * Anthropic's usage as the ledger counts it, as the Anthropic adapter reads it (AnthropicAdapter
 * toTokenUsage): input_tokens excludes cache reads and cache writes, and all three are input
 * the model read; output_tokens includes thinking.
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

/** Whether Anthropic reported anything at all (a stream cut before message_start reported nothing). */
export function reportedUsage(usage: AnthropicUsage): boolean {
  return usage.input_tokens !== undefined || usage.output_tokens !== undefined;
}
