import type { ProviderId, ReasoningEffort, TokenUsage } from '../../shared';
import type { BusinessSettings } from '../../shared/business';
import { ANTHROPIC_DEFAULT_MAX_TOKENS, THINKING_BUDGET_TOKENS } from '../providers/anthropic/convertToAnthropicRequest';
import type { ResolvedModel } from './types';

/**
 * What a request costs the user, in USD, markup included. Prices are business config (USD per
 * 1M tokens, per model), so cost lives beside them in server/business.
 *
 * Before the call: `estimateCost` = prompt x input price + expected_output_tokens x output price.
 * After it: `actualCost` from the provider's reported usage. Adapters normalise usage so that
 * `inputTokens` includes cached tokens and `outputTokens` includes reasoning tokens (every
 * provider bills reasoning as output), so reasoning needs no extra term and cached tokens are
 * the discounted share of the input.
 */

/**
 * Price of a cached input token relative to the model's input price, per provider's published rules:
 * - openai 0.5: the GPT-4o family's cached-input price (GPT-4.1 is 0.25 and GPT-5 0.1; we pick the
 *   4o rate because the default catalog is 4o-first, and it errs toward charging the user more
 *   rather than less). Change here if the catalog moves to 4.1/5.
 * - anthropic 0.1: cache reads. Cache writes (1.25x) are billed here at 1x: TokenUsage does not
 *   carry them separately.
 * - google 0.25: Gemini 2.5 implicit/explicit cache reads (storage fees not modelled).
 * - deepseek 0.1: cache-hit input $0.028 vs cache-miss $0.28 (V3.2 list prices).
 * - xai 0.25: Grok 3 cached input $0.75 vs $3.
 * - kimi 0.25: Kimi K2 cache hit $0.15 vs $0.60.
 * - groq 0.5: Groq's prompt-caching discount on models that support it.
 * - mistral, perplexity 1: no published cache discount. (Perplexity's per-request search fee is not modelled.)
 */
export const CACHED_INPUT_RATE: Readonly<Record<ProviderId, number>> = {
  openai: 0.5,
  anthropic: 0.1,
  google: 0.25,
  deepseek: 0.1,
  xai: 0.25,
  kimi: 0.25,
  groq: 0.5,
  mistral: 1,
  perplexity: 1,
};

const PER_TOKEN = 1 / 1_000_000;

/** Costs are rounded to a nano-dollar, the usage ledger's unit, so sums of many requests stay exact. */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}

export function withMarkup(usd: number, markupPercentage: number): number {
  return usd * (1 + markupPercentage / 100);
}

export function estimateCost(
  model: Pick<ResolvedModel, 'inputPrice' | 'outputPrice'>,
  inputTokens: number,
  settings: Pick<BusinessSettings, 'expected_output_tokens' | 'markup_percentage'>,
): number {
  const base = inputTokens * model.inputPrice * PER_TOKEN + settings.expected_output_tokens * model.outputPrice * PER_TOKEN;
  return roundUsd(withMarkup(base, settings.markup_percentage));
}

/** `provider` defaults to the model's; pass it when the request was served under another provider's rules. */
export function actualCost(
  model: Pick<ResolvedModel, 'provider' | 'inputPrice' | 'outputPrice'>,
  usage: Pick<TokenUsage, 'inputTokens' | 'outputTokens' | 'cachedInputTokens'>,
  settings: Pick<BusinessSettings, 'markup_percentage'>,
  provider: ProviderId = model.provider,
): number {
  const cached = Math.min(usage.cachedInputTokens, usage.inputTokens);
  const uncached = usage.inputTokens - cached;
  const input = (uncached + cached * CACHED_INPUT_RATE[provider]) * model.inputPrice * PER_TOKEN;
  const output = usage.outputTokens * model.outputPrice * PER_TOKEN;
  return roundUsd(withMarkup(input + output, settings.markup_percentage));
}

/**
 * Output tokens an answer may run to when the request names no cap (`maxTokens`): the upstream
 * then stops at the model's own maximum. Per provider, the largest documented maximum output of
 * the default catalog's models (anthropic: the cap its adapter always sends,
 * ANTHROPIC_DEFAULT_MAX_TOKENS). Only the budget reservation reads it (maxCost): raise a value
 * when the catalog gains a model with a longer maximum, or a budget can be overshot by the
 * difference on one request.
 */
export const MAX_OUTPUT_TOKENS: Readonly<Record<ProviderId, number>> = {
  openai: 32_768, // GPT-4.1 (GPT-4o: 16,384)
  anthropic: ANTHROPIC_DEFAULT_MAX_TOKENS,
  google: 65_536, // Gemini 2.5 Pro and Flash
  mistral: 32_768,
  perplexity: 8_192,
  deepseek: 65_536, // the reasoner's maximum (chat: 8,192)
  groq: 32_768, // Llama 3.3 70B Versatile
  xai: 131_072, // Grok 3: no separate output cap below its context
  kimi: 131_072, // Kimi K2: likewise
};

/**
 * Output tokens an answer without `maxTokens` may run to. Anthropic's adapter asks for its
 * default plus the thinking budget when reasoning is on (convertToAnthropicRequest), so the
 * bound grows by that budget.
 */
function uncappedOutputTokens(provider: ProviderId, reasoningEffort: ReasoningEffort | undefined): number {
  if (provider !== 'anthropic' || reasoningEffort === undefined || reasoningEffort === 'none') return MAX_OUTPUT_TOKENS[provider];
  return MAX_OUTPUT_TOKENS.anthropic + THINKING_BUDGET_TOKENS[reasoningEffort];
}

/**
 * The most a request can cost, markup included: an upper bound of the prompt's tokens (see
 * promptTokensAtMost: no tokenizer needs one token per byte or less) at the uncached input price,
 * plus the request's output cap (or the provider's maximum) at the output price, for the most
 * expensive of the models that may serve it (the model and its fallbacks). What a daily budget
 * reserves at admission, so that parallel requests cannot overspend it.
 */
export function maxCost(
  models: readonly Pick<ResolvedModel, 'provider' | 'inputPrice' | 'outputPrice'>[],
  promptTokensAtMost: number,
  maxOutputTokens: number | undefined,
  settings: Pick<BusinessSettings, 'markup_percentage'>,
  reasoningEffort?: ReasoningEffort,
): number {
  let most = 0;
  for (const model of models) {
    const output = maxOutputTokens ?? uncappedOutputTokens(model.provider, reasoningEffort);
    const base = promptTokensAtMost * model.inputPrice * PER_TOKEN + output * model.outputPrice * PER_TOKEN;
    if (base > most) most = base;
  }
  // Rounded up, never down: this is a bound.
  return Math.ceil(withMarkup(most, settings.markup_percentage) * 1e9) / 1e9;
}
