import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { convertToAnthropicRequest, JSON_ANSWER_TOOL } from '../../server/providers/anthropic/convertToAnthropicRequest';
import { createAdapters } from '../../server/providers/createAdapters';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';
import type { AdapterContext, AdapterEvent, UpstreamRequest } from '../../server/providers/types';
import { adapterEvents } from '../support/adapterEvents';
import { collect, collectUntilError } from './support/sseResponse';

/** Issue 20 through the Anthropic wire: the adapter's conversion, against the in-repo mock and a loopback upstream. */

const KEY = 'sk-test-ant-surface-000000001';
const PNG = 'data:image/png;base64,iVBORw0KGgo=';
const weather = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city'] },
};
const time = { type: 'function' as const, name: 'get_time' };

let mock: MockProvider;
const upstream = new UpstreamHttp();
const adapters = createAdapters(upstream);
const ctx = (baseUrl = mock.baseUrls.anthropic): AdapterContext => ({ apiKey: KEY, baseUrl, signal: new AbortController().signal });
const req = (over: Partial<UpstreamRequest>): UpstreamRequest => ({ provider: 'anthropic', model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'hello' }], ...over });
const run = (r: UpstreamRequest) => collect(adapterEvents(adapters.anthropic, r, ctx()));

beforeAll(async () => {
  mock = await startMockProvider();
});
afterAll(async () => {
  await mock.close();
  await upstream.close();
});
beforeEach(() => {
  mock.reset();
  mock.configure({ rpmPerKey: null });
});

/** Tool call fragments put together by index, as a client assembles them. */
function assembled(events: AdapterEvent[]): { id?: string; name?: string; arguments: string }[] {
  const calls: { id?: string; name?: string; arguments: string }[] = [];
  for (const e of events) {
    if (e.type !== 'tool_call_delta') continue;
    const call = (calls[e.index] ??= { arguments: '' });
    if (e.id !== undefined) call.id = e.id;
    if (e.name !== undefined) call.name = e.name;
    call.arguments += e.argumentsDelta;
  }
  return calls;
}

const textOf = (events: AdapterEvent[], type: 'delta' | 'reasoning' = 'delta') => events.map((e) => (e.type === type ? e.text : '')).join('');
const done = (events: AdapterEvent[]) => events.find((e) => e.type === 'done');

describe('Anthropic conversion: what goes upstream (issue 20)', () => {
  it('issue 20: tools, tool_choice, tool calls, tool results, images, stop and top_p arrive as Anthropic expects', () => {
    const body = convertToAnthropicRequest(
      req({
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'developer', content: [{ type: 'text', text: 'Use tools.' }] },
          { role: 'user', content: [{ type: 'text', text: 'Weather and time?' }, { type: 'image', url: PNG }, { type: 'image', url: 'https://example.com/cat.jpg', detail: 'low' }] },
          { role: 'assistant', content: 'Checking.', toolCalls: [{ id: 'toolu_1', name: 'get_weather', arguments: '{"city":"Paris"}' }, { id: 'toolu_2', name: 'get_time', arguments: '' }] },
          { role: 'tool', toolCallId: 'toolu_1', content: 'sunny' },
          { role: 'tool', toolCallId: 'toolu_2', content: [{ type: 'text', text: 'noon' }] },
          { role: 'user', content: 'Thanks' },
        ],
        tools: [weather, time],
        toolChoice: { type: 'function', name: 'get_weather' },
        parallelToolCalls: false,
        stop: ['END'],
        topP: 0.9,
        temperature: 0.5,
        maxTokens: 300,
      }),
    );
    expect(body).toEqual({
      model: 'claude-sonnet-4-5',
      max_tokens: 300,
      system: 'Be brief.\n\nUse tools.',
      stream: true,
      temperature: 0.5,
      top_p: 0.9,
      stop_sequences: ['END'],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Weather and time?' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
            { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'toolu_2', name: 'get_time', input: {} },
          ],
        },
        // Consecutive tool results merge into one user turn, results first, then the user's text.
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' },
            { type: 'tool_result', tool_use_id: 'toolu_2', content: 'noon' },
            { type: 'text', text: 'Thanks' },
          ],
        },
      ],
      tools: [
        { name: 'get_weather', description: 'The weather in a city', input_schema: weather.parameters },
        { name: 'get_time', input_schema: { type: 'object', properties: {} } },
      ],
      tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true },
    });
  });

  it('issue 20: toolChoice maps to auto, any, none; plain chat keeps its string-content body', () => {
    const choice = (toolChoice: UpstreamRequest['toolChoice']) => convertToAnthropicRequest(req({ tools: [weather], toolChoice })).tool_choice;
    expect(choice('auto')).toEqual({ type: 'auto' });
    expect(choice('required')).toEqual({ type: 'any' });
    expect(choice('none')).toEqual({ type: 'none' });
    expect(choice(undefined)).toBeUndefined();
    expect(convertToAnthropicRequest(req({ tools: [weather], parallelToolCalls: false })).tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    expect(convertToAnthropicRequest(req({ toolChoice: 'none' }))).toEqual({ model: 'claude-sonnet-4-5', max_tokens: 4096, messages: [{ role: 'user', content: 'hello' }], stream: true });
  });

  it('issue 20: reasoningEffort becomes thinking: a budget on manual-thinking models, adaptive with effort on newer ones; none sends none', () => {
    expect(convertToAnthropicRequest(req({ model: 'claude-sonnet-4-5', reasoningEffort: 'medium' }))).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 8192 }, max_tokens: 4096 + 8192 });
    expect(convertToAnthropicRequest(req({ model: 'claude-3-7-sonnet-20250219', reasoningEffort: 'minimal', maxTokens: 2000 }))).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 1024 }, max_tokens: 2000 });
    expect(convertToAnthropicRequest(req({ model: 'claude-sonnet-4-20250514', reasoningEffort: 'high' })).thinking).toEqual({ type: 'enabled', budget_tokens: 16384 });
    const adaptive = convertToAnthropicRequest(req({ model: 'claude-opus-4-7', reasoningEffort: 'low' }));
    expect(adaptive).toMatchObject({ thinking: { type: 'adaptive' }, output_config: { effort: 'low' } });
    expect(convertToAnthropicRequest(req({ model: 'claude-sonnet-4-6', reasoningEffort: 'none' })).thinking).toBeUndefined();
  });

  it('issue 20: json_schema is native structured output (output_config.format); json_object a forced tool', () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
    expect(convertToAnthropicRequest(req({ responseFormat: { type: 'json_schema', name: 'answer', schema, strict: true } })).output_config).toEqual({ format: { type: 'json_schema', schema } });
    const json = convertToAnthropicRequest(req({ responseFormat: { type: 'json_object' } }));
    expect(json.tools).toEqual([{ name: JSON_ANSWER_TOOL, description: expect.any(String), input_schema: { type: 'object' } }]);
    expect(json.tool_choice).toEqual({ type: 'tool', name: JSON_ANSWER_TOOL });
    expect(convertToAnthropicRequest(req({ responseFormat: { type: 'text' } })).output_config).toBeUndefined();
  });

  it('issue 20: what Anthropic cannot take is a 400 naming the field, before any upstream call', async () => {
    const refused: [Partial<UpstreamRequest>, string][] = [
      [{ seed: 7 }, 'seed'],
      [{ presencePenalty: 0.5 }, 'presencePenalty'],
      [{ frequencyPenalty: -1 }, 'frequencyPenalty'],
      [{ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'get_time', arguments: '{not json' }] }, { role: 'tool', toolCallId: 'c1', content: 'x' }] }, 'messages[1].toolCalls[0].arguments'],
      [{ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'get_time', arguments: '[1]' }] }, { role: 'tool', toolCallId: 'c1', content: 'x' }] }, 'messages[1].toolCalls[0].arguments'],
      [{ reasoningEffort: 'high', maxTokens: 16384 }, 'maxTokens'],
      [{ reasoningEffort: 'low', temperature: 0.2 }, 'temperature'],
      [{ reasoningEffort: 'low', topP: 0.5 }, 'topP'],
      [{ reasoningEffort: 'low', tools: [weather], toolChoice: 'required' }, 'toolChoice'],
      [{ responseFormat: { type: 'json_object' }, tools: [weather] }, 'responseFormat'],
      [{ responseFormat: { type: 'json_object' }, reasoningEffort: 'low' }, 'responseFormat'],
      [
        {
          reasoningEffort: 'low',
          tools: [time],
          messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'get_time', arguments: '{}' }] }, { role: 'tool', toolCallId: 'c1', content: 'noon' }],
        },
        'reasoningEffort',
      ],
    ];
    for (const [over, param] of refused) {
      const { events, error } = await collectUntilError(adapterEvents(adapters.anthropic, req(over), ctx()));
      expect(events).toEqual([]);
      expect(error, param).toMatchObject({ kind: 'bad_request', status: 400, param });
    }
    expect(mock.stats().total.requests).toBe(0);
  });

  it('issue 20: the adapter sends the converted body upstream as is (loopback capture)', async () => {
    let body: unknown;
    const server: Server = createServer((request, response) => {
      let text = '';
      request.on('data', (chunk: Buffer) => (text += chunk.toString()));
      request.on('end', () => {
        body = JSON.parse(text);
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const r = req({ delivery: 'whole', tools: [weather], toolChoice: 'auto', stop: ['x'], messages: [{ role: 'user', content: [{ type: 'text', text: 'see' }, { type: 'image', url: PNG }] }] });
      const events = await collect(adapterEvents(adapters.anthropic, r, ctx(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
      expect(textOf(events)).toBe('ok');
      expect(body).toEqual(JSON.parse(JSON.stringify(convertToAnthropicRequest(r))));
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('Anthropic adapter against the mock (issue 20)', () => {
  it('issue 20: a streamed tool call comes back as tool_call_delta events by call index, finish tool_calls', async () => {
    const events = await run(req({ tools: [weather, time], messages: [{ role: 'user', content: 'call get_weather and get_time' }] }));
    const calls = assembled(events);
    expect(calls).toEqual([
      { id: expect.stringMatching(/^toolu_/), name: 'get_weather', arguments: expect.any(String) },
      { id: expect.stringMatching(/^toolu_/), name: 'get_time', arguments: '{}' },
    ]);
    expect(JSON.parse(calls[0]!.arguments)).toEqual({ city: 'mock', unit: 'celsius' });
    // The first fragment of each index carries id and name, with no argument text; later ones only text.
    const first = events.find((e) => e.type === 'tool_call_delta');
    expect(first).toMatchObject({ index: 0, argumentsDelta: '' });
    expect(events.filter((e) => e.type === 'tool_call_delta' && e.index === 0).length).toBeGreaterThan(2);
    expect(done(events)).toEqual({ type: 'done', finishReason: 'tool_calls' });
  });

  it('issue 20: whole answers carry the same tool calls; parallelToolCalls false makes one', async () => {
    const events = await run(req({ delivery: 'whole', tools: [weather, time], parallelToolCalls: false, messages: [{ role: 'user', content: 'call get_weather and get_time' }] }));
    expect(assembled(events)).toEqual([{ id: expect.stringMatching(/^toolu_/), name: 'get_weather', arguments: '{"city":"mock","unit":"celsius"}' }]);
    expect(done(events)).toEqual({ type: 'done', finishReason: 'tool_calls' });
    const named = await run(req({ tools: [weather, time], toolChoice: { type: 'function', name: 'get_time' } }));
    expect(assembled(named).map((c) => c.name)).toEqual(['get_time']);
  });

  it('issue 20: tool results go back and the mock answers them in text (it checks tool_result follows tool_use)', async () => {
    const events = await run(
      req({
        tools: [weather],
        messages: [
          { role: 'user', content: 'weather?' },
          { role: 'assistant', content: '', toolCalls: [{ id: 'toolu_9', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
          { role: 'tool', toolCallId: 'toolu_9', content: 'sunny' },
        ],
      }),
    );
    expect(textOf(events)).toMatch(/^Mock answer to: the tool result sunny/);
    expect(done(events)).toEqual({ type: 'done', finishReason: 'stop' });
  });

  it('issue 20: images are accepted (base64 and URL sources)', async () => {
    const events = await run(req({ messages: [{ role: 'user', content: [{ type: 'text', text: 'what is it' }, { type: 'image', url: PNG }, { type: 'image', url: 'https://example.com/a.webp' }] }] }));
    expect(textOf(events)).toMatch(/^Mock answer to: \(saw 2 images\) what is it/);
  });

  it('issue 20: json_schema comes back as JSON text valid against the schema, json_object as a JSON object text, both finish stop', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 3 } }, required: ['city', 'days'], additionalProperties: false };
    for (const delivery of ['stream', 'whole'] as const) {
      const events = await run(req({ delivery, responseFormat: { type: 'json_schema', name: 'forecast', schema } }));
      expect(JSON.parse(textOf(events))).toEqual({ city: 'mock', days: 3 });
      expect(done(events)).toEqual({ type: 'done', finishReason: 'stop' });
      const json = await run(req({ delivery, responseFormat: { type: 'json_object' } }));
      expect(typeof JSON.parse(textOf(json))).toBe('object');
      expect(json.some((e) => e.type === 'tool_call_delta')).toBe(false);
      expect(done(json)).toEqual({ type: 'done', finishReason: 'stop' });
    }
  });

  it('issue 20: thinking comes back as reasoning events before the answer, streamed and whole', async () => {
    for (const model of ['claude-sonnet-4-5', 'claude-opus-4-7']) {
      for (const delivery of ['stream', 'whole'] as const) {
        const events = await run(req({ model, delivery, reasoningEffort: 'medium', messages: [{ role: 'user', content: 'think hard' }] }));
        expect(textOf(events, 'reasoning')).toBe('Mock thinking about: think hard');
        expect(events.findIndex((e) => e.type === 'reasoning')).toBeLessThan(events.findIndex((e) => e.type === 'delta'));
        expect(textOf(events)).toMatch(/^Mock answer to: think hard/);
      }
    }
  });

  it('issue 20: stop sequences and plain text stream as before', async () => {
    const events = await run(req({ stop: ['STOP'], topP: 0.8, model: 'claude-haiku-4-5-mock-chunks-6' }));
    expect(events.filter((e) => e.type === 'delta')).toHaveLength(6);
    expect(done(events)).toEqual({ type: 'done', finishReason: 'stop' });
  });
});
