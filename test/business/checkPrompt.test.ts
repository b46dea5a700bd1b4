import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { describe, expect, it } from 'vitest';
import { checkPrompt } from '../../server/business/checkPrompt';
import { countPromptTokens, countPromptTokensWithin, TOKENS_PER_MESSAGE, TOKENS_PER_REPLY } from '../../server/business/countPromptTokens';

const limits = { prompt_soft_limit: 50, prompt_hard_limit: 100 };
// ' hello' is one o200k token; repeating it gives prompts of known size.
const words = (n: number) => ' hello'.repeat(n);

describe('prompt limits', () => {
  it('counts o200k tokens plus the chat framing', () => {
    expect(countTokens(words(10))).toBe(10);
    const messages = [
      { role: 'system' as const, content: words(5) },
      { role: 'user' as const, content: words(10) },
    ];
    expect(countPromptTokens(messages)).toBe(TOKENS_PER_REPLY + 2 * TOKENS_PER_MESSAGE + 15);
    expect(countPromptTokensWithin(messages, 1000)).toBe(countPromptTokens(messages));
    expect(countPromptTokensWithin(messages, 20)).toBeNull();
  });

  it('passes a prompt at the soft limit', () => {
    // 3 + 4 + 43 = 50 tokens: exactly the soft limit
    expect(checkPrompt([{ role: 'user', content: words(43) }], limits)).toEqual({ status: 'ok', promptTokens: 50 });
  });

  it('warns one token over the soft limit', () => {
    const result = checkPrompt([{ role: 'user', content: words(44) }], limits);
    expect(result).toMatchObject({ status: 'warning', promptTokens: 51, softLimit: 50 });
  });

  it('accepts exactly the hard limit and refuses one token more', () => {
    expect(checkPrompt([{ role: 'user', content: words(93) }], limits)).toMatchObject({ status: 'warning', promptTokens: 100 });
    expect(checkPrompt([{ role: 'user', content: words(94) }], limits)).toMatchObject({ status: 'refused', hardLimit: 100, promptTokensAtLeast: 101 });
  });

  it('refuses a huge prompt without tokenizing all of it', () => {
    const huge = [{ role: 'user' as const, content: 'x '.repeat(100_000) }];
    expect(checkPrompt(huge, { prompt_soft_limit: 5000, prompt_hard_limit: 10_000 }).status).toBe('refused');
  });
});
