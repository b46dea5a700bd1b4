import fc from 'fast-check';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { describe, expect, it } from 'vitest';
import { checkPrompt } from '../../server/business/checkPrompt';
import {
  countPromptTokens,
  countPromptTokensWithin,
  estimatePromptTokens,
  promptTokensAtMost,
  TOKENS_PER_MESSAGE,
  TOKENS_PER_REPLY,
} from '../../server/business/countPromptTokens';

const limits = { prompt_soft_limit: 50, prompt_hard_limit: 100 };
// ' hello' is one o200k token; repeating it gives prompts of known size.
const words = (n: number) => ' hello'.repeat(n);

describe('prompt limits', () => {
  it('counts o200k tokens plus the chat framing', async () => {
    expect(countTokens(words(10))).toBe(10);
    const messages = [
      { role: 'system' as const, content: words(5) },
      { role: 'user' as const, content: words(10) },
    ];
    expect(await countPromptTokens(messages)).toBe(TOKENS_PER_REPLY + 2 * TOKENS_PER_MESSAGE + 15);
    expect(await countPromptTokensWithin(messages, 1000)).toBe(await countPromptTokens(messages));
    expect(await countPromptTokensWithin(messages, 20)).toBeNull();
  });

  it('passes a prompt at the soft limit', async () => {
    // 3 + 4 + 43 = 50 tokens: exactly the soft limit
    expect(await checkPrompt([{ role: 'user', content: words(43) }], limits)).toEqual({ status: 'ok', promptTokens: 50, exact: true });
  });

  it('warns one token over the soft limit', async () => {
    const result = await checkPrompt([{ role: 'user', content: words(44) }], limits);
    expect(result).toMatchObject({ status: 'warning', promptTokens: 51, softLimit: 50 });
  });

  it('accepts exactly the hard limit and refuses one token more', async () => {
    expect(await checkPrompt([{ role: 'user', content: words(93) }], limits)).toMatchObject({ status: 'warning', promptTokens: 100 });
    expect(await checkPrompt([{ role: 'user', content: words(94) }], limits)).toMatchObject({ status: 'refused', hardLimit: 100, promptTokensAtLeast: 101 });
  });

  it('refuses a huge prompt without tokenizing all of it', async () => {
    const huge = [{ role: 'user' as const, content: 'x '.repeat(100_000) }];
    expect((await checkPrompt(huge, { prompt_soft_limit: 5000, prompt_hard_limit: 10_000 })).status).toBe('refused');
  });

  it('a prompt too short to reach the soft limit in bytes is estimated, not tokenized', async () => {
    const short = [{ role: 'user' as const, content: 'hi' }];
    // 3 + 4 + 2 bytes = 9 at most: within 50 whatever the tokenizer says.
    expect(await checkPrompt(short, limits)).toEqual({ status: 'ok', promptTokens: estimatePromptTokens(short), exact: false });
    expect(estimatePromptTokens(short)).toBe(TOKENS_PER_REPLY + TOKENS_PER_MESSAGE + 1);
  });

  it('the byte bound is never below the exact count, so skipping the tokenizer never changes a decision', async () => {
    const text = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ maxLength: 300 }));
    const messages = fc.array(fc.record({ role: fc.constantFrom('system' as const, 'user' as const, 'assistant' as const), content: text }), { minLength: 1, maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(messages, async (prompt) => {
        const exact = await countPromptTokens(prompt);
        expect(promptTokensAtMost(prompt)).toBeGreaterThanOrEqual(exact);
        expect(estimatePromptTokens(prompt)).toBeLessThanOrEqual(promptTokensAtMost(prompt));
        // The decision with the shortcut equals the decision from the exact count.
        const soft = exact; // a soft limit exactly at the count: ok; one lower: warning
        expect((await checkPrompt(prompt, { prompt_soft_limit: soft, prompt_hard_limit: soft + 10 })).status).toBe('ok');
        expect((await checkPrompt(prompt, { prompt_soft_limit: soft - 1, prompt_hard_limit: soft + 10 })).status).toBe('warning');
      }),
      { numRuns: 300 },
    );
  });
});

describe('images in prompt counts (issue 20)', () => {
  it('count a fixed TOKENS_PER_IMAGE each, not their data URL bytes, in the bound, the estimate and the exact count', async () => {
    const { countPromptTokens, estimatePromptTokens, promptTokensAtMost, TOKENS_PER_IMAGE } = await import('../../server/business/countPromptTokens');
    const dataUrl = `data:image/png;base64,${'A'.repeat(1_000_000)}`;
    const text = [{ role: 'user' as const, content: 'what is in this picture?' }];
    const withImage = [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'what is in this picture?' }, { type: 'image' as const, url: dataUrl }] }];
    expect(promptTokensAtMost(withImage) - promptTokensAtMost(text)).toBe(TOKENS_PER_IMAGE);
    expect(estimatePromptTokens(withImage) - estimatePromptTokens(text)).toBe(TOKENS_PER_IMAGE);
    expect((await countPromptTokens(withImage)) - (await countPromptTokens(text))).toBe(TOKENS_PER_IMAGE);
  });
});
