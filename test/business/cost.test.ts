import { describe, expect, it } from 'vitest';
import { actualCost, estimateCost, MAX_OUTPUT_TOKENS, maxCost } from '../../server/business/cost';
import type { ResolvedModel } from '../../server/business/types';

const model = (provider: ResolvedModel['provider'], inputPrice: number, outputPrice: number): ResolvedModel => ({
  id: 'm',
  provider,
  upstreamModel: 'm',
  displayName: 'M',
  inputPrice,
  outputPrice,
  fallbacks: [],
  capabilities: { tools: false, vision: false, json_schema: false, reasoning: false },
});
const settings = { expected_output_tokens: 1000, markup_percentage: 30 };

/** Every expected value below is worked by hand in the comment beside it. */
describe('cost', () => {
  it('estimates: prompt x input price + expected output x output price, plus markup', () => {
    // gpt-4o $2.50/$10: 1000 x 2.5e-6 = 0.0025; 1000 x 10e-6 = 0.01; 0.0125 x 1.3 = 0.01625
    expect(estimateCost(model('openai', 2.5, 10), 1000, settings)).toBeCloseTo(0.01625, 12);
    // gpt-4o-mini $0.15/$0.60, 5000 tokens, no markup: 0.00075 + 0.0006 = 0.00135
    expect(estimateCost(model('openai', 0.15, 0.6), 5000, { expected_output_tokens: 1000, markup_percentage: 0 })).toBeCloseTo(0.00135, 12);
  });

  it('OpenAI: cached input at 50%; reasoning already inside output', () => {
    // uncached 1000 x 2.5e-6 = 0.0025; cached 1000 x 0.5 x 2.5e-6 = 0.00125; output 500 x 10e-6 = 0.005
    // 0.00875 x 1.3 = 0.011375
    const usage = { inputTokens: 2000, outputTokens: 500, cachedInputTokens: 1000, reasoningTokens: 100 };
    expect(actualCost(model('openai', 2.5, 10), usage, settings)).toBeCloseTo(0.011375, 12);
  });

  it('Anthropic: cache reads at 10%', () => {
    // claude-sonnet-4 $3/$15: uncached 2000 x 3e-6 = 0.006; cached 8000 x 0.1 x 3e-6 = 0.0024; output 1000 x 15e-6 = 0.015
    // 0.0234 x 1.3 = 0.03042
    const usage = { inputTokens: 10_000, outputTokens: 1000, cachedInputTokens: 8000, reasoningTokens: 0 };
    expect(actualCost(model('anthropic', 3, 15), usage, settings)).toBeCloseTo(0.03042, 12);
  });

  it('Gemini: cached at 25%, thinking tokens billed once as output', () => {
    // gemini-2.5-flash $0.30/$2.50: uncached 2000 x 0.3e-6 = 0.0006; cached 2000 x 0.25 x 0.3e-6 = 0.00015;
    // output 3000 (of which 2000 thinking) x 2.5e-6 = 0.0075; 0.00825 x 1.3 = 0.010725
    const usage = { inputTokens: 4000, outputTokens: 3000, cachedInputTokens: 2000, reasoningTokens: 2000 };
    expect(actualCost(model('google', 0.3, 2.5), usage, settings)).toBeCloseTo(0.010725, 12);
  });

  it('DeepSeek: cache hits at the cache-hit price ($0.028 vs $0.28)', () => {
    // uncached 400k x 0.28e-6 = 0.112; cached 600k x 0.028e-6 = 0.0168; output 100k x 0.42e-6 = 0.042; = 0.1708
    const usage = { inputTokens: 1_000_000, outputTokens: 100_000, cachedInputTokens: 600_000, reasoningTokens: 0 };
    expect(actualCost(model('deepseek', 0.28, 0.42), usage, { markup_percentage: 0 })).toBeCloseTo(0.1708, 12);
  });

  it('Mistral: no cache discount', () => {
    // 1000 x 2e-6 = 0.002 (cached or not); 1000 x 6e-6 = 0.006; = 0.008
    const usage = { inputTokens: 1000, outputTokens: 1000, cachedInputTokens: 500, reasoningTokens: 0 };
    expect(actualCost(model('mistral', 2, 6), usage, { markup_percentage: 0 })).toBeCloseTo(0.008, 12);
  });

  it('never charges negative input when a provider reports more cached than input tokens', () => {
    // all 100 treated as cached: 100 x 0.5 x 10e-6 = 0.0005
    const usage = { inputTokens: 100, outputTokens: 0, cachedInputTokens: 500, reasoningTokens: 0 };
    expect(actualCost(model('openai', 10, 10), usage, { markup_percentage: 0 })).toBeCloseTo(0.0005, 12);
  });

  it('issue 24.3: the most a request can cost bounds it by its output cap or the provider maximum, over every model that may serve', () => {
    // 100 prompt tokens, cap 40: gpt-4o 100 x 2.5e-6 + 40 x 10e-6 = 0.00065; x 1.3 = 0.000845
    expect(maxCost([model('openai', 2.5, 10)], 100, 40, settings)).toBeCloseTo(0.000845, 12);
    // A fallback dearer than the model: its price is the bound. 100 x 3e-6 + 40 x 15e-6 = 0.0009; x 1.3 = 0.00117
    expect(maxCost([model('openai', 2.5, 10), model('anthropic', 3, 15)], 100, 40, settings)).toBeCloseTo(0.00117, 12);
    // No cap: the provider's maximum output (anthropic: the 4096 its adapter always asks).
    expect(MAX_OUTPUT_TOKENS.anthropic).toBe(4096);
    expect(maxCost([model('anthropic', 3, 15)], 0, undefined, { markup_percentage: 0 })).toBeCloseTo(4096 * 15e-6, 12);
    // Never below what the answer could actually cost (the actual cost of the same tokens).
    const bound = maxCost([model('google', 1.25, 10)], 500, 200, settings);
    expect(bound).toBeGreaterThanOrEqual(actualCost(model('google', 1.25, 10), { inputTokens: 500, outputTokens: 200, cachedInputTokens: 0 }, settings));
  });
});

describe('maxCost with thinking (issue 20)', () => {
  it('bounds an Anthropic answer without maxTokens by its default plus the thinking budget its adapter asks for', async () => {
    const { maxCost } = await import('../../server/business/cost');
    const { ANTHROPIC_DEFAULT_MAX_TOKENS, THINKING_BUDGET_TOKENS } = await import('../../server/providers/anthropic/convertToAnthropicRequest');
    const model = { provider: 'anthropic' as const, inputPrice: 0, outputPrice: 1_000_000 };
    const settings = { markup_percentage: 0 };
    expect(maxCost([model], 0, undefined, settings)).toBeCloseTo(ANTHROPIC_DEFAULT_MAX_TOKENS, 6);
    expect(maxCost([model], 0, undefined, settings, 'high')).toBeCloseTo(ANTHROPIC_DEFAULT_MAX_TOKENS + THINKING_BUDGET_TOKENS.high, 6);
    expect(maxCost([model], 0, 100, settings, 'high')).toBeCloseTo(100, 6);
  });
});
