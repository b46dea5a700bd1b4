import { countTokens, isWithinTokenLimit } from 'gpt-tokenizer/encoding/o200k_base';
import type { ChatMessage } from '../../shared';

/**
 * Prompt size in tokens, with OpenAI's o200k_base encoding (GPT-4o and later) plus the chat
 * format's per-message overhead. For other providers this is an estimate: their tokenizers are
 * not public or not bundled (Claude, Gemini, Llama, ...), and typically count within ~10-20% of
 * o200k on English text. Limits are business rules, so a consistent estimate is what matters;
 * billing uses the provider's own reported counts (see cost.ts).
 */

/** OpenAI's documented chat overhead: ~3 tokens framing each message, 1 for the role, 3 priming the reply. */
export const TOKENS_PER_MESSAGE = 4;
export const TOKENS_PER_REPLY = 3;

export function countPromptTokens(messages: readonly ChatMessage[]): number {
  let total = TOKENS_PER_REPLY;
  for (const message of messages) total += TOKENS_PER_MESSAGE + countTokens(message.content);
  return total;
}

/**
 * Like countPromptTokens, but stops tokenizing once the count passes `limit` (a hard limit
 * check need not tokenize a 100 MB prompt). Returns the exact count, or null when over `limit`.
 */
export function countPromptTokensWithin(messages: readonly ChatMessage[], limit: number): number | null {
  let total = TOKENS_PER_REPLY;
  for (const message of messages) {
    total += TOKENS_PER_MESSAGE;
    if (total > limit) return null;
    const within = isWithinTokenLimit(message.content, limit - total);
    if (within === false) return null;
    total += within;
  }
  return total > limit ? null : total;
}
