import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';

/** The official openai SDK's Responses API against the mock: the mock speaks OpenAI's wire (issue 21). */

const KEY = 'sk-test-openai-responses-0001';

let mock: MockProvider;
let client: OpenAI;

beforeAll(async () => {
  mock = await startMockProvider({ clock: () => Date.parse('2026-01-01T00:00:00Z') });
  client = new OpenAI({ apiKey: KEY, baseURL: mock.baseUrls.openai, maxRetries: 0 });
});
afterAll(() => mock.close());
beforeEach(() => {
  mock.reset();
  mock.configure({ rpmPerKey: null });
});

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

const weatherTool = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'Weather of a city',
  strict: true,
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
};

describe('issue 21: the mock provider speaks the Responses API', () => {
  it('answers a whole response object with output_text and usage', async () => {
    const response = await client.responses.create({ model: 'gpt-4o-mini', instructions: 'Be brief.', input: 'hello there' });
    expect(response.object).toBe('response');
    expect(response.id).toMatch(/^resp_/);
    expect(response.status).toBe('completed');
    expect(response.instructions).toBe('Be brief.');
    expect(response.output_text).toMatch(/^Mock answer to: hello there/);
    expect(response.output[0]).toMatchObject({ type: 'message', role: 'assistant', status: 'completed' });
    expect(response.usage?.total_tokens).toBe((response.usage?.input_tokens ?? 0) + (response.usage?.output_tokens ?? 0));
    // OpenAI keeps a response unless told not to.
    expect((response as unknown as { store: boolean }).store).toBe(true);
  });

  it('streams the full event sequence, numbered, and finalResponse() assembles it', async () => {
    const stream = client.responses.stream({ model: 'gpt-4o-mini-mock-chunks-12', input: [{ role: 'user', content: 'stream please' }], store: false });
    const types: string[] = [];
    const numbers: number[] = [];
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      numbers.push(event.sequence_number);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    const final = await stream.finalResponse();
    expect(types.slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(types.filter((t) => t === 'response.output_text.delta')).toHaveLength(12);
    expect(types.slice(-4)).toEqual(['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
    expect(numbers).toEqual(numbers.map((_, i) => i));
    expect(final.output_text).toBe(text);
    expect((final as unknown as { store: boolean }).store).toBe(false);
    expect(final.usage?.output_tokens).toBe(12);
  });

  it('calls a function, and answers its output in text', async () => {
    const first = await client.responses.create({ model: 'gpt-4o-mini', input: 'what is get_weather in Paris?', tools: [weatherTool] });
    const call = first.output.find((item) => item.type === 'function_call');
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', status: 'completed' });
    if (call?.type !== 'function_call') throw new Error('no call');
    expect(JSON.parse(call.arguments)).toEqual({ city: 'mock' });
    const second = await client.responses.create({
      model: 'gpt-4o-mini',
      tools: [weatherTool],
      input: [
        { role: 'user', content: 'what is get_weather in Paris?' },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: '{"temp":21}' },
      ],
    });
    expect(second.output_text).toMatch(/^Mock answer to: the tool result/);
  });

  it('streams a function call as argument deltas', async () => {
    const stream = client.responses.stream({ model: 'gpt-4o-mini', input: 'get_weather please', tools: [weatherTool], tool_choice: 'required' });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    const final = await stream.finalResponse();
    expect(types).toContain('response.function_call_arguments.delta');
    expect(types).toContain('response.function_call_arguments.done');
    expect(final.output[0]).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"mock"}' });
  });

  it('ends an answer cut by max_output_tokens as incomplete', async () => {
    const response = await client.responses.create({ model: 'gpt-4o-mini-mock-chunks-40', input: 'long', max_output_tokens: 16 });
    expect(response.status).toBe('incomplete');
    expect(response.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(response.usage?.output_tokens).toBe(16);
  });

  it('refuses what OpenAI refuses: unknown parameters, an output without its call', async () => {
    const unknown = await caught(client.responses.create({ model: 'gpt-4o-mini', input: 'x', frobnicate: 1 } as never));
    expect(unknown).toMatchObject({ status: 400, message: expect.stringContaining("Unknown parameter: 'frobnicate'") });
    const orphan = await caught(client.responses.create({ model: 'gpt-4o-mini', input: [{ type: 'function_call_output', call_id: 'call_x', output: '1' }] }));
    expect(orphan).toMatchObject({ status: 400, message: expect.stringContaining('No tool call found') });
  });

  it('plays faults as on chat: a 429 with rate-limit headers', async () => {
    mock.faults.inject(KEY, { kind: 'rateLimit', retryAfterSeconds: 2 });
    const error = await caught(client.responses.create({ model: 'gpt-4o-mini', input: 'x' }));
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('2');
    expect(mock.statsFor(KEY).total.rateLimited).toBe(1);
  });
});
