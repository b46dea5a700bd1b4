import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { createAdapters } from '../../server/providers/createAdapters';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';
import { ProviderError } from '../../server/providers/ProviderError';
import type { AdapterContext, AdapterEvent, UpstreamRequest } from '../../server/providers/types';
import { adapterEvents } from '../support/adapterEvents';
import { collect, collectUntilError } from './support/sseResponse';

/**
 * The Gemini adapter with the whole request surface (issue 20), over real HTTP: a loopback
 * server in front of the mock provider captures each request body exactly as it left Keyrack,
 * then forwards it to the mock (or answers a canned body), so every test sees both sides.
 */

const GKEY = 'AIza-test-gemini-0000000021';
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAghm3WQAAAABJRU5ErkJggg==';
const weatherParams = { type: 'object', properties: { city: { type: 'string', description: 'City name' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city'] };
const weather = { type: 'function' as const, name: 'get_weather', description: 'The weather in a city', parameters: weatherParams };
const time = { type: 'function' as const, name: 'get_time', parameters: { type: 'object', properties: {} } };

let mock: MockProvider;
let loopback: Server;
let baseUrl = '';
const captured: { url: string; body: any }[] = [];
/** A canned answer for the next requests instead of the mock's: [content-type, body]. */
let canned: [string, string] | undefined;
const upstream = new UpstreamHttp();
const adapter = createAdapters(upstream).google;

beforeAll(async () => {
  mock = await startMockProvider({ clock: () => Date.parse('2026-01-01T00:00:00Z') });
  loopback = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      captured.push({ url: req.url ?? '', body: JSON.parse(text) });
      if (canned) {
        res.writeHead(200, { 'content-type': canned[0] });
        return res.end(canned[1]);
      }
      void fetch(`${mock.url}${req.url}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': String(req.headers['x-goog-api-key']) }, body: text }).then(async (answer) => {
        res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
        res.end(Buffer.from(await answer.arrayBuffer()));
      });
    });
  });
  loopback.listen(0, '127.0.0.1');
  await once(loopback, 'listening');
  baseUrl = `http://127.0.0.1:${(loopback.address() as AddressInfo).port}/gemini`;
});
afterAll(async () => {
  loopback.closeAllConnections();
  await new Promise<void>((resolve) => loopback.close(() => resolve()));
  await mock.close();
  await upstream.close();
});
beforeEach(() => {
  captured.length = 0;
  canned = undefined;
});

const ctx = (): AdapterContext => ({ apiKey: GKEY, baseUrl, signal: new AbortController().signal });
const run = (req: Omit<UpstreamRequest, 'provider' | 'model'>, model = 'gemini-2.5-flash') => collect(adapterEvents(adapter, { provider: 'google', model, ...req }, ctx()));

async function refusal(req: Omit<UpstreamRequest, 'provider' | 'model'>): Promise<ProviderError> {
  const { events, error } = await collectUntilError(adapterEvents(adapter, { provider: 'google', model: 'gemini-2.5-flash', ...req }, ctx()));
  expect(events).toEqual([]);
  expect(ProviderError.isInstance(error)).toBe(true);
  return error as ProviderError;
}

const calls = (events: AdapterEvent[]) => events.filter((e) => e.type === 'tool_call_delta');

describe('Gemini adapter: the whole request surface over the Gemini wire (issue 20)', () => {
  it('issue 20: tools, toolChoice, tool results, images, stop, seed, penalties, thinking arrive upstream as Gemini expects', async () => {
    const events = await run({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Use metric.' }] },
        { role: 'user', content: [{ type: 'text', text: 'weather here?' }, { type: 'image', url: `data:image/png;base64,${PNG}` }, { type: 'image', url: 'https://example.com/photos/street.JPG?size=2' }] },
        { role: 'assistant', content: '', toolCalls: [{ id: 'call_abc', name: 'get_weather', arguments: '{"city":"Paris"}' }, { id: 'gcall_mock7_1', name: 'get_time', arguments: '' }] },
        { role: 'tool', toolCallId: 'call_abc', content: '{"temp":21}' },
        { role: 'tool', toolCallId: 'gcall_mock7_1', content: '12:00' },
      ],
      tools: [weather, time],
      toolChoice: 'auto',
      parallelToolCalls: true,
      maxTokens: 300,
      temperature: 0.5,
      topP: 0.9,
      stop: ['END', 'STOP!'],
      seed: 42,
      presencePenalty: 0.5,
      frequencyPenalty: -0.25,
      reasoningEffort: 'medium',
    });
    expect(captured).toHaveLength(1);
    expect(captured[0]?.url).toBe('/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
    expect(captured[0]?.body).toEqual({
      contents: [
        {
          role: 'user',
          parts: [{ text: 'weather here?' }, { inlineData: { mimeType: 'image/png', data: PNG } }, { fileData: { mimeType: 'image/jpeg', fileUri: 'https://example.com/photos/street.JPG?size=2' } }],
        },
        {
          role: 'model',
          // The id Gemini never issued (Keyrack's gcall_) stays out.
          parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' }, id: 'call_abc' } }, { functionCall: { name: 'get_time', args: {} } }],
        },
        {
          role: 'user',
          parts: [{ functionResponse: { name: 'get_weather', response: { temp: 21 }, id: 'call_abc' } }, { functionResponse: { name: 'get_time', response: { output: '12:00' } } }],
        },
      ],
      systemInstruction: { parts: [{ text: 'Be brief.' }, { text: 'Use metric.' }] },
      tools: [{ functionDeclarations: [{ name: 'get_weather', description: 'The weather in a city', parametersJsonSchema: weatherParams }, { name: 'get_time', parametersJsonSchema: { type: 'object', properties: {} } }] }],
      toolConfig: { functionCallingConfig: { mode: 'AUTO' } },
      generationConfig: {
        maxOutputTokens: 300,
        temperature: 0.5,
        topP: 0.9,
        stopSequences: ['END', 'STOP!'],
        seed: 42,
        presencePenalty: 0.5,
        frequencyPenalty: -0.25,
        thinkingConfig: { thinkingBudget: 8192, includeThoughts: true },
      },
    });
    // The mock thinks first (includeThoughts), then answers the tool results in text.
    expect(events[0]).toEqual({ type: 'reasoning', text: 'Mock thinking about: weather here?' });
    expect(events.filter((e) => e.type === 'delta').map((e) => (e.type === 'delta' ? e.text : '')).join('')).toMatch(/^Mock answer to: the tool result \(saw 2 images\) weather here\?/);
    const usage = events.find((e) => e.type === 'usage');
    expect(usage?.type === 'usage' && usage.usage.reasoningTokens).toBeGreaterThan(0);
    expect(events.at(-1)).toEqual({ type: 'done', finishReason: 'stop' });
  });

  it('issue 20: a named toolChoice is ANY limited to it, and the call streams back as one tool_call_delta with finish tool_calls', async () => {
    const messages: UpstreamRequest['messages'] = [{ role: 'user', content: 'what is the weather?' }];
    const events = await run({ messages, tools: [time, weather], toolChoice: { type: 'function', name: 'get_weather' } });
    expect(captured[0]?.body.toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] } });
    const [call] = calls(events);
    expect(call).toMatchObject({ type: 'tool_call_delta', index: 0, name: 'get_weather', argumentsDelta: '{"city":"mock","unit":"celsius"}' });
    // Gemini 2.x sends no id: Keyrack makes one from the responseId, unique to the answer.
    expect(call?.type === 'tool_call_delta' && call.id).toMatch(/^gcall_mock\d+_0$/);
    expect(events.filter((e) => e.type === 'delta')).toEqual([]);
    expect(events.at(-1)).toEqual({ type: 'done', finishReason: 'tool_calls' });

    // The same from a whole answer (generateContent).
    const whole = await run({ messages, tools: [weather], toolChoice: 'required', delivery: 'whole' });
    expect(captured[1]?.url).toMatch(/:generateContent$/);
    expect(captured[1]?.body.toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY' } });
    expect(calls(whole)).toHaveLength(1);
    expect(whole.at(-1)).toEqual({ type: 'done', finishReason: 'tool_calls' });

    // Sent back with its result, the call's made-up id stays out and the response finds its name.
    const id = call?.type === 'tool_call_delta' ? (call.id as string) : '';
    const next = await run({
      messages: [...messages, { role: 'assistant', content: '', toolCalls: [{ id, name: 'get_weather', arguments: '{"city":"mock","unit":"celsius"}' }] }, { role: 'tool', toolCallId: id, content: 'sunny' }],
      tools: [weather],
    });
    expect(captured[2]?.body.contents.slice(1)).toEqual([
      { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'mock', unit: 'celsius' } } }] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { output: 'sunny' } } }] },
    ]);
    expect(next.at(-1)).toEqual({ type: 'done', finishReason: 'stop' });
    expect(calls(next)).toEqual([]);
  });

  it('issue 20: to Gemini 3 a continued tool call carries the documented skip signature on the turn\'s first call (Keyrack keeps no thoughtSignature)', async () => {
    const messages: UpstreamRequest['messages'] = [
      { role: 'user', content: 'weather and time?' },
      { role: 'assistant', content: '', toolCalls: [{ id: 'gcall_r_0', name: 'get_weather', arguments: '{"city":"Rome"}' }, { id: 'gcall_r_1', name: 'get_time', arguments: '{}' }] },
      { role: 'tool', toolCallId: 'gcall_r_0', content: 'warm' },
      { role: 'tool', toolCallId: 'gcall_r_1', content: 'noon' },
    ];
    const events = await run({ messages, tools: [weather, time] }, 'gemini-3-flash-preview');
    expect(captured[0]?.body.contents[1]).toEqual({
      role: 'model',
      parts: [{ functionCall: { name: 'get_weather', args: { city: 'Rome' } }, thoughtSignature: 'skip_thought_signature_validator' }, { functionCall: { name: 'get_time', args: {} } }],
    });
    expect(events.at(-1)).toEqual({ type: 'done', finishReason: 'stop' });
    await run({ messages, tools: [weather, time] }, 'gemini-2.0-flash');
    expect(captured[1]?.body.contents[1].parts[0]).toEqual({ functionCall: { name: 'get_weather', args: { city: 'Rome' } } });
  });

  it('issue 20: several calls in one answer get indexes 0, 1 and distinct ids; strict tools ask for VALIDATED, none for NONE', async () => {
    const events = await run({ messages: [{ role: 'user', content: 'call get_weather and get_time' }], tools: [{ ...weather, strict: true }, time] });
    expect(captured[0]?.body.toolConfig).toEqual({ functionCallingConfig: { mode: 'VALIDATED' } });
    const deltas = calls(events);
    expect(deltas.map((d) => (d.type === 'tool_call_delta' ? [d.index, d.name] : []))).toEqual([[0, 'get_weather'], [1, 'get_time']]);
    expect(new Set(deltas.map((d) => (d.type === 'tool_call_delta' ? d.id : ''))).size).toBe(2);
    const none = await run({ messages: [{ role: 'user', content: 'call get_weather' }], tools: [weather], toolChoice: 'none' });
    expect(captured[1]?.body.toolConfig).toEqual({ functionCallingConfig: { mode: 'NONE' } });
    expect(calls(none)).toEqual([]);
  });

  it('issue 20: json_schema structured output arrives as responseMimeType + responseJsonSchema and comes back as JSON text', async () => {
    const schema = { type: 'object', properties: { title: { type: 'string' }, tags: { type: 'array', items: { type: 'string' }, minItems: 2 } }, required: ['title', 'tags'], additionalProperties: false };
    const events = await run({ messages: [{ role: 'user', content: 'a film' }], responseFormat: { type: 'json_schema', name: 'film', description: 'A film', schema, strict: true } });
    expect(captured[0]?.body.generationConfig).toEqual({ responseMimeType: 'application/json', responseJsonSchema: { ...schema, description: 'A film' } });
    const text = events.map((e) => (e.type === 'delta' ? e.text : '')).join('');
    expect(JSON.parse(text)).toEqual({ title: 'mock', tags: ['mock', 'mock'] });
    await run({ messages: [{ role: 'user', content: 'json' }], responseFormat: { type: 'json_object' } });
    expect(captured[1]?.body.generationConfig).toEqual({ responseMimeType: 'application/json' });
    await run({ messages: [{ role: 'user', content: 'no thinking' }], reasoningEffort: 'none' });
    expect(captured[2]?.body.generationConfig).toEqual({ thinkingConfig: { thinkingBudget: 0 } });
  });

  it('issue 20: what Gemini cannot take is a 400 naming the field, with no upstream call', async () => {
    const user: UpstreamRequest['messages'] = [{ role: 'user', content: 'hi' }];
    const cases: [Omit<UpstreamRequest, 'provider' | 'model'>, string][] = [
      [{ messages: user, tools: [weather], parallelToolCalls: false }, 'parallelToolCalls'],
      [{ messages: [{ role: 'user', content: [{ type: 'image', url: 'data:image/gif;base64,R0lGODlhAQABAAAAACw=' }] }] }, 'messages[0].content[0].url'],
      [{ messages: [{ role: 'user', content: [{ type: 'text', text: 'see' }, { type: 'image', url: 'https://example.com/image?id=3' }] }] }, 'messages[0].content[1].url'],
      [{ messages: [...user, { role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'get_weather', arguments: '{"city":' }] }], tools: [weather] }, 'messages[1].toolCalls[0].arguments'],
      [{ messages: [...user, { role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'get_weather', arguments: '["Paris"]' }] }], tools: [weather] }, 'messages[1].toolCalls[0].arguments'],
      [{ messages: [...user, { role: 'tool', toolCallId: 'nobody', content: 'x' }] }, 'messages[1].toolCallId'],
      [{ messages: user, tools: [{ ...weather, parameters: { type: 'object', properties: { city: { type: 'string', pattern: '^[A-Z]' } } } }] }, 'tools[0].parameters.properties.city.pattern'],
      [{ messages: user, tools: [time, { ...weather, parameters: { allOf: [{ type: 'object' }] } }] }, 'tools[1].parameters.allOf'],
      [{ messages: user, tools: [{ ...weather, parameters: { type: 'object', properties: { when: { $ref: '#/$defs/t', description: 'x' } } } }] }, 'tools[0].parameters.properties.when.description'],
      [{ messages: user, responseFormat: { type: 'json_schema', name: 'x', schema: { type: 'object', properties: { n: { type: 'integer', const: 3 } } } } }, 'responseFormat.schema.properties.n.const'],
      [{ messages: user, responseFormat: { type: 'json_schema', name: 'x', schema: { type: 'object', properties: { n: { enum: [true] } } } } }, 'responseFormat.schema.properties.n.enum'],
      [{ messages: user, seed: 2 ** 40 }, 'seed'],
    ];
    for (const [req, param] of cases) {
      const error = await refusal(req);
      expect(error, param).toMatchObject({ kind: 'bad_request', status: 400, param });
      expect(error.message).toContain(param);
    }
    expect(captured).toEqual([]);
  });

  it("issue 20: Gemini's own call ids are kept, an id-less signature part is skipped, MALFORMED_FUNCTION_CALL is not tool_calls", async () => {
    const frame = (value: unknown) => `data: ${JSON.stringify(value)}\r\n\r\n`;
    canned = [
      'text/event-stream',
      frame({ candidates: [{ content: { role: 'model', parts: [{ text: 'Planning the call', thought: true }] } }], responseId: 'r1' }) +
        frame({
          candidates: [
            {
              content: { role: 'model', parts: [{ text: 'Let me check. ' }, { functionCall: { id: 'fc_9', name: 'get_weather', args: { city: 'Oslo' } }, thoughtSignature: 'c2ln' }, { text: '', thoughtSignature: 'c2ln' }] },
              finishReason: 'STOP',
            },
          ],
          usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 7, thoughtsTokenCount: 4, totalTokenCount: 16 },
          responseId: 'r1',
        }),
    ];
    expect(await run({ messages: [{ role: 'user', content: 'oslo' }], tools: [weather] })).toEqual([
      { type: 'reasoning', text: 'Planning the call' },
      { type: 'delta', text: 'Let me check. ' },
      { type: 'tool_call_delta', index: 0, id: 'fc_9', name: 'get_weather', argumentsDelta: '{"city":"Oslo"}' },
      { type: 'usage', usage: { inputTokens: 5, outputTokens: 11, cachedInputTokens: 0, reasoningTokens: 4 } },
      { type: 'done', finishReason: 'tool_calls' },
    ]);
    canned = ['text/event-stream', frame({ candidates: [{ content: { role: 'model', parts: [{ text: '' }] }, finishReason: 'MALFORMED_FUNCTION_CALL' }] })];
    expect((await run({ messages: [{ role: 'user', content: 'x' }], tools: [weather] })).at(-1)).toEqual({ type: 'done', finishReason: 'other' });
  });
});
