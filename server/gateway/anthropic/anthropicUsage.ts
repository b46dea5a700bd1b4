import { anthropicUsageSchema, type AnthropicUsage } from '../../providers/anthropic/anthropicMessagesApi';

// The ledger's reading of it is the adapter's own (one definition for chat and /v1/messages).
export { tokenUsageOf } from '../../providers/anthropic/anthropicMessagesApi';

/** Copies the fields of an Anthropic `usage` object that are set onto `into` (message_delta's are cumulative: later wins). */
export function mergeUsage(into: AnthropicUsage, raw: unknown): void {
  if (raw === undefined || raw === null) return;
  const parsed = anthropicUsageSchema.safeParse(raw);
  if (!parsed.success) return;
  for (const [k, v] of Object.entries(parsed.data)) if (v !== null && v !== undefined) (into as Record<string, unknown>)[k] = v;
}

/** Whether Anthropic reported anything at all (a stream cut before message_start reported nothing). */
export function reportedUsage(usage: AnthropicUsage): boolean {
  return usage.input_tokens !== undefined || usage.output_tokens !== undefined;
}
