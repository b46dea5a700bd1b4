import { messageText, type ChatMessage } from '../../shared';

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

/**
 * What one image counts for, in prompt limits and the budget's bound. Providers bill images by
 * their own rules (OpenAI by 512 px tiles, ~1,100 tokens for a detailed 1024 px image; Anthropic
 * about width x height / 750, ~1,600 at its 1.15 MP cap; Gemini 258 per tile), reported in the
 * answer's usage; this is a fixed, generous stand-in. An image's bytes (a data URL can be
 * megabytes) are no measure of its tokens, and counting them would refuse every image prompt.
 */
export const TOKENS_PER_IMAGE = 1_600;

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
  for (const message of messages) total += TOKENS_PER_MESSAGE + messageBytes(message) + imageTokens(message);
  return total;
}

/** An estimate without the tokenizer (ESTIMATED_BYTES_PER_TOKEN), never above promptTokensAtMost. */
export function estimatePromptTokens(messages: readonly ChatMessage[]): number {
  let total = TOKENS_PER_REPLY;
  for (const message of messages) total += TOKENS_PER_MESSAGE + Math.ceil(messageBytes(message) / ESTIMATED_BYTES_PER_TOKEN) + imageTokens(message);
  return total;
}

/** The exact o200k count of a prompt, framing included. */
export async function countPromptTokens(messages: readonly ChatMessage[]): Promise<number> {
  const { countTokens } = await loadTokenizer();
  let total = TOKENS_PER_REPLY;
  for (const message of messages) total += TOKENS_PER_MESSAGE + countTokens(tokenizedText(message)) + imageTokens(message);
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
    total += TOKENS_PER_MESSAGE + imageTokens(message);
    if (total > limit) return null;
    const within = isWithinTokenLimit(tokenizedText(message), limit - total);
    if (within === false) return null;
    total += within;
  }
  return total > limit ? null : total;
}

/**
 * What a message's text weighs before tokenizing, in UTF-8 bytes: its text, its tool calls' names
 * and arguments, a tool result's call id. Images count apart (imageTokens).
 */
export function messageBytes(message: ChatMessage): number {
  const { content } = message;
  let bytes = 0;
  if (typeof content === 'string') bytes += Buffer.byteLength(content, 'utf8');
  else for (const part of content) if (part.type === 'text') bytes += Buffer.byteLength(part.text, 'utf8');
  if (message.role === 'assistant') for (const call of message.toolCalls ?? []) bytes += Buffer.byteLength(call.name, 'utf8') + Buffer.byteLength(call.arguments, 'utf8');
  if (message.role === 'tool') bytes += message.toolCallId.length;
  return bytes;
}

/** The text the tokenizer counts for a message: its text and its tool calls (images are counted by bytes only). */
function tokenizedText(message: ChatMessage): string {
  const text = messageText(message);
  if (message.role !== 'assistant' || !message.toolCalls) return text;
  return text + message.toolCalls.map((call) => call.name + call.arguments).join('');
}

/** TOKENS_PER_IMAGE for each image part of a message. */
function imageTokens(message: ChatMessage): number {
  if (typeof message.content === 'string') return 0;
  let images = 0;
  for (const part of message.content) if (part.type === 'image') images++;
  return images * TOKENS_PER_IMAGE;
}
