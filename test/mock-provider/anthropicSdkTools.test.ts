import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';

/** The official `@anthropic-ai/sdk` against the mock's Anthropic wire: tool use, images, thinking, structured output (issue 20). */

const KEY = 'sk-test-ant-sdk-tools-0000001';
const PNG = 'iVBORw0KGgo=';
const weather: Anthropic.Tool = {
  name: 'get_weather',
  description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city'] },
};
const time: Anthropic.Tool = { name: 'get_time', input_schema: { type: 'object', properties: {} } };

let mock: MockProvider;
const client = () => new Anthropic({ apiKey: KEY, baseURL: mock.baseUrls.anthropic, maxRetries: 0 });

beforeAll(async () => {
  mock = await startMockProvider();
});
afterAll(() => mock.close());
beforeEach(() => {
  mock.reset();
  mock.configure({ rpmPerKey: null });
});

describe('anthropic SDK: tools and the rest of the request surface (issue 20)', () => {
  it('issue 20: the anthropic client gets a streamed tool call assembled by finalMessage()', async () => {
    const stream = client().messages.stream({
      model: 'claude-sonnet-4-6',
      max_tokens: 200,
      tools: [weather, time],
      tool_choice: { type: 'tool', name: 'get_weather' },
      messages: [{ role: 'user', content: 'weather in Paris?' }],
    });
    const partials: string[] = [];
    stream.on('inputJson', (partial) => partials.push(partial));
    const message = await stream.finalMessage();
    expect(message.stop_reason).toBe('tool_use');
    expect(message.content).toHaveLength(1);
    expect(message.content[0]).toMatchObject({ type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'get_weather', input: { city: 'mock', unit: 'celsius' } });
    expect(partials.length).toBeGreaterThan(1);
  });

  it('issue 20: a whole answer has tool_use blocks; tool_result turns are answered in text; images are accepted', async () => {
    const first = await client().messages.create({ model: 'claude-haiku-4-5', max_tokens: 200, tools: [weather, time], tool_choice: { type: 'any' }, messages: [{ role: 'user', content: 'go' }] });
    expect(first.stop_reason).toBe('tool_use');
    const call = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    expect(call).toMatchObject({ name: 'get_weather', input: { city: 'mock', unit: 'celsius' } });
    const second = await client().messages.create({
      model: 'claude-haiku-4-5',
      max_tokens: 200,
      tools: [weather, time],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'go' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }] },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call!.id, content: 'sunny' }] },
      ],
    });
    expect(second.stop_reason).toBe('end_turn');
    expect(second.content[0]).toMatchObject({ type: 'text', text: expect.stringMatching(/^Mock answer to: the tool result \(saw 1 image\) sunny/) });
  });

  it('issue 20: the mock refuses a tool_use without its tool_result next, as Anthropic does', async () => {
    const error = await client()
      .messages.create({
        model: 'claude-haiku-4-5',
        max_tokens: 200,
        tools: [time],
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_x', name: 'get_time', input: {} }] },
          { role: 'user', content: 'and?' },
        ],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect((error as Error).message).toMatch(/tool_use.*ids were found without.*tool_result/);
  });

  it('issue 20: parallel tool calls stream in their own blocks; disable_parallel_tool_use makes one', async () => {
    const both = await client()
      .messages.stream({ model: 'claude-sonnet-4-6', max_tokens: 200, tools: [weather, time], messages: [{ role: 'user', content: 'call get_weather and get_time' }] })
      .finalMessage();
    expect(both.content.map((b) => (b.type === 'tool_use' ? b.name : b.type))).toEqual(['get_weather', 'get_time']);
    const one = await client().messages.create({
      model: 'claude-sonnet-4-6',
      max_tokens: 200,
      tools: [weather, time],
      tool_choice: { type: 'auto', disable_parallel_tool_use: true },
      messages: [{ role: 'user', content: 'call get_weather and get_time' }],
    });
    expect(one.content.filter((b) => b.type === 'tool_use')).toHaveLength(1);
  });

  it('issue 20: thinking blocks (with a signature) come before the text, streamed and whole', async () => {
    const streamed = await client()
      .messages.stream({ model: 'claude-haiku-4-5', max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'ponder this' }] })
      .finalMessage();
    expect(streamed.content[0]).toMatchObject({ type: 'thinking', thinking: 'Mock thinking about: ponder this', signature: expect.any(String) });
    expect(streamed.content[1]).toMatchObject({ type: 'text', text: expect.stringMatching(/^Mock answer to: ponder this/) });
    const whole = await client().messages.create({ model: 'claude-opus-4-7', max_tokens: 4000, thinking: { type: 'adaptive' }, messages: [{ role: 'user', content: 'ponder this' }] });
    expect(whole.content.map((b) => b.type)).toEqual(['thinking', 'text']);
    const tooSmall = await client()
      .messages.create({ model: 'claude-haiku-4-5', max_tokens: 1024, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(tooSmall).toBeInstanceOf(Anthropic.BadRequestError);
  });

  it('issue 20: output_config.format answers JSON text valid against the schema', async () => {
    const message = await client().messages.create({
      model: 'claude-sonnet-4-6',
      max_tokens: 200,
      output_config: { format: { type: 'json_schema', schema: { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false } } },
      messages: [{ role: 'user', content: 'json please' }],
    });
    const text = message.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
    expect(JSON.parse(text)).toEqual({ answer: 'mock' });
  });
});
