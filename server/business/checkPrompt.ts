import type { ChatMessage } from '../../shared';
import type { BusinessSettings } from '../../shared/business';
import { countPromptTokensWithin, estimatePromptTokens, promptTokensAtMost } from './countPromptTokens';

/**
 * Applies the prompt limits: over the soft limit the request proceeds with a `warning` stream
 * event; over the hard limit it is refused (`prompt_too_long`) before any provider is called.
 */
export type PromptCheck =
  /**
   * `promptTokens` is exact when `exact`; otherwise the prompt is too short to reach the soft
   * limit for certain, and the count is estimated without the tokenizer (countPromptTokens.ts).
   */
  | { status: 'ok'; promptTokens: number; exact: boolean }
  | { status: 'warning'; promptTokens: number; softLimit: number; message: string }
  /** The count stops at the hard limit, so only a lower bound is known. */
  | { status: 'refused'; promptTokensAtLeast: number; hardLimit: number; message: string };

export async function checkPrompt(messages: readonly ChatMessage[], settings: Pick<BusinessSettings, 'prompt_soft_limit' | 'prompt_hard_limit'>): Promise<PromptCheck> {
  const { prompt_soft_limit: softLimit, prompt_hard_limit: hardLimit } = settings;
  // Within both limits for certain (every token is at least one byte): no tokenizer needed.
  if (promptTokensAtMost(messages) <= Math.min(softLimit, hardLimit)) {
    return { status: 'ok', promptTokens: estimatePromptTokens(messages), exact: false };
  }
  const promptTokens = await countPromptTokensWithin(messages, hardLimit);
  if (promptTokens === null) {
    return {
      status: 'refused',
      promptTokensAtLeast: hardLimit + 1,
      hardLimit,
      message: `The prompt is longer than ${hardLimit} tokens, the most this gateway accepts. Shorten it or start a new conversation.`,
    };
  }
  if (promptTokens > softLimit) {
    return {
      status: 'warning',
      promptTokens,
      softLimit,
      message: `The prompt is about ${promptTokens} tokens, over the recommended ${softLimit}: answers cost more and may be slower.`,
    };
  }
  return { status: 'ok', promptTokens, exact: true };
}
