import { expect, it } from 'vitest';
import { checkPrompt } from '../../server/business/checkPrompt';
import { tokenizerRequested } from '../../server/business/countPromptTokens';

// Its own file: vitest gives each file fresh modules, so nothing else has loaded the table here.
it('loads the o200k table only for a prompt that could reach a limit (issue #8: ~50 MiB of idle RSS)', async () => {
  const limits = { prompt_soft_limit: 5000, prompt_hard_limit: 10_000 };
  expect(tokenizerRequested()).toBe(false);
  await checkPrompt([{ role: 'user', content: 'a short question' }], limits);
  expect(tokenizerRequested()).toBe(false);
  const result = await checkPrompt([{ role: 'user', content: ' hello'.repeat(1000) }], limits);
  expect(tokenizerRequested()).toBe(true);
  expect(result).toEqual({ status: 'ok', promptTokens: 3 + 4 + 1000, exact: true });
});
