import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * The official openai client through Keyrack's /v1 to models served by the Anthropic and Gemini
 * wire formats (demo mode: the mock speaks each): a tool conversation works the same whatever
 * the provider (issue 20).
 */

let gw: TestGateway;
let client: OpenAI;
beforeAll(async () => {
  gw = await startTestGateway({ models: [testModel('claude-sonnet-4-5', 'anthropic'), testModel('gemini-2.5-flash', 'google')] });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: await gw.token('alice'), maxRetries: 0 });
});
afterAll(() => gw?.close());

const tools = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];

describe('tool conversations through /v1 on the Anthropic and Gemini paths (issue 20)', () => {
  for (const model of ['claude-sonnet-4-5', 'gemini-2.5-flash']) {
    it(`issue 20: ${model}: the openai client gets a streamed tool call assembled, sends the result back, and gets a text answer`, async () => {
      const stream = client.chat.completions.stream({ model, messages: [{ role: 'user', content: 'what is the weather in Paris?' }], tools, tool_choice: 'required' });
      const first = await stream.finalChatCompletion();
      const choice = first.choices[0]!;
      expect(choice.finish_reason).toBe('tool_calls');
      const call = choice.message.tool_calls?.[0];
      expect(call?.type === 'function' && call.function.name).toBe('get_weather');
      expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ city: 'mock' });

      const whole = await client.chat.completions.create({
        model,
        messages: [
          { role: 'user', content: 'what is the weather in Paris?' },
          { role: 'assistant', content: null, tool_calls: [call!] },
          { role: 'tool', tool_call_id: call!.id, content: 'sunny, 21 C' },
        ],
        tools,
      });
      expect(whole.choices[0]?.finish_reason).toBe('stop');
      expect(whole.choices[0]?.message.content).toMatch(/^Mock answer to: the tool result/);
    });
  }
});
