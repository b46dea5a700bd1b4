import type { ChatMessage } from '../../shared';

/**
 * Prompt size in tokens, with OpenAI's o200k_base encoding (GPT-4o and later) plus the chat
 * format's per-message overhead. For other providers this is an estimate: their tokenizers are
 * not public or not bundled (Claude, Gemini, Llama, ...), and typically count within ~10-20% of
 * o200k on English text. Limits are business rules, so a consistent estimate is what matters;
 * billing uses the provider's own reported counts (see cost.ts).
 *
 * The o200k table is loaded on first need, not at start-up: building it takes ~50 MiB of the
 * process's memory for good (issue #8: it was the largest item of the gateway's idle RSS), and
 * most prompts never need it. Every o200k token is at least one byte of UTF-8, so a prompt's
 * byte count (plus the framing) bounds its token count from above: a prompt whose bound is
 * within a limit is within it for certain, and only prompts that could pass one are tokenized.
 */

/** OpenAI's documented chat overhead: ~3 tokens framing each message, 1 for the role, 3 priming the reply. */
export const TOKENS_PER_MESSAGE = 4;
export const TOKENS_PER_REPLY = 3;

/**
 * What English text averages per o200k token. Only used to estimate prompts too short to reach
 * a limit (their estimated cost); never for a limit decision.
 */
export const ESTIMATED_BYTES_PER_TOKEN = 4;

type Tokenizer = typeof import('gpt-tokenizer/encoding/o200k_base');
let tokenizer: Promise<Tokenizer> | null = null;

/** The o200k tokenizer, loaded once on first call. */
export function loadTokenizer(): Promise<Tokenizer> {
  tokenizer ??= import('gpt-tokenizer/encoding/o200k_base');
  return tokenizer;
}

/** Whether the o200k table has been asked for in this process (tests check it stays unloaded). */
export function tokenizerRequested(): boolean {
  return tokenizer !== null;
}

/** An upper bound of the o200k count, from UTF-8 byte lengths alone (no tokenizer). */
export function promptTokensAtMost(messages: readonly ChatMessage[]): number {
  let total = TOKENS_PER_REPLY;
  for (const message of messages) total += TOKENS_PER_MESSAGE + Buffer.byteLength(message.content, 'utf8');
  return total;
}

/** An estimate without the tokenizer (ESTIMATED_BYTES_PER_TOKEN), never above promptTokensAtMost. */
export function estimatePromptTokens(messages: readonly ChatMessage[]): number {
  let total = TOKENS_PER_REPLY;
  for (const message of messages) total += TOKENS_PER_MESSAGE + Math.ceil(Buffer.byteLength(message.content, 'utf8') / ESTIMATED_BYTES_PER_TOKEN);
  return total;
}

/** The exact o200k count of a prompt, framing included. */
export async function countPromptTokens(messages: readonly ChatMessage[]): Promise<number> {
  const { countTokens } = await loadTokenizer();
  let total = TOKENS_PER_REPLY;
  for (const message of messages) total += TOKENS_PER_MESSAGE + countTokens(message.content);
  return total;
}

/**
 * Like countPromptTokens, but stops tokenizing once the count passes `limit` (a hard limit
 * check need not tokenize a 100 MB prompt). Returns the exact count, or null when over `limit`.
 */
export async function countPromptTokensWithin(messages: readonly ChatMessage[], limit: number): Promise<number | null> {
  const { isWithinTokenLimit } = await loadTokenizer();
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
