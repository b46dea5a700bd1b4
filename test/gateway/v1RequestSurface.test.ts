import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue 20 through /v1: the official openai client sends the whole request surface (tools, tool
 * results, images, structured output, sampling parameters) through Keyrack to an OpenAI-style
 * upstream (the mock provider behind a recorder that keeps every body it forwards), and gets tool
 * calls back whole and streamed; what Keyrack does not carry is a 400 naming the field, with no
 * upstream call.
 */

const KEY = 'sk-test-v1-request-surface-000000000001';
const PNG = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
const WEATHER = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'], additionalProperties: false },
    strict: true,
  },
};
const TIME = { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: {} } } };

let mock: MockProvider;
let recorder: Server;
/** The bodies the upstream received, in order. */
const upstreamBodies: Record<string, unknown>[] = [];
let gw: TestGateway;
let client: OpenAI;
let token: string;

/** Forwards to the mock, keeping each chat body as it arrived upstream. */
async function startRecorder(target: string): Promise<Server> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'POST') upstreamBodies.push(JSON.parse(body) as Record<string, unknown>);
    const answer = await fetch(`${target}${req.url}`, {
      method: req.method!,
      headers: { authorization: req.headers.authorization ?? '', 'content-type': 'application/json', accept: req.headers.accept ?? '*/*' },
      ...(req.method === 'POST' ? { body } : {}),
    });
    res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
    if (answer.body) Readable.fromWeb(answer.body as never).pipe(res);
    else res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  recorder = await startRecorder(mock.baseUrls.openai);
  gw = await startTestGateway({
    env: { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: `http://127.0.0.1:${(recorder.address() as AddressInfo).port}` },
    models: [
      testModel('gpt-4o', 'openai'),
      // No vision in the catalog: images are refused before any upstream call.
      testModel('text-only', 'openai', { upstream_model: 'gpt-4o', capabilities: { tools: true, vision: false, json_schema: true, reasoning: false } }),
      // No anthropic key here: its fallbacks serve, those that can take the request.
      testModel('claude-keyless', 'anthropic', { fallbacks: ['text-only', 'gpt-4o'] }),
    ],
  });
  token = await gw.token('surface-user');
  client = gw.openai(token);
});
afterAll(async () => {
  await gw?.close();
  await new Promise((resolve) => recorder?.close(resolve));
  await mock?.close();
});

/** A raw POST to /v1/chat/completions. */
async function post(body: unknown): Promise<{ status: number; json: { error?: { param: string | null; message: string; type: string } } }> {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as never };
}

describe('/v1 carries the whole request surface (issue 20)', () => {
  it('issue 20: tools, tool_choice, tool and assistant tool-call messages, image parts, response_format, stop, top_p, seed arrive upstream intact', async () => {
    const before = upstreamBodies.length;
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: 'developer', content: 'Answer briefly.' },
      { role: 'user', content: [{ type: 'text', text: 'What is in this picture, and the weather in Paris?' }, { type: 'image_url', image_url: { url: PNG, detail: 'low' } }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_abc123', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' } }] },
      { role: 'tool', tool_call_id: 'call_abc123', content: '{"temperature":21}' },
    ];
    const completion = await client.chat.completions.create({
      model: 'gpt-4o',
      messages,
      tools: [WEATHER, TIME],
      tool_choice: 'auto',
      parallel_tool_calls: false,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] }, strict: true } },
      stop: ['\n\n\n', 'END'],
      top_p: 0.9,
      seed: 42,
      temperature: 0.5,
      presence_penalty: 0.1,
      frequency_penalty: -0.1,
      max_completion_tokens: 300,
    });
    expect(upstreamBodies.length).toBe(before + 1);
    expect(upstreamBodies.at(-1)).toEqual({
      model: 'gpt-4o',
      messages,
      tools: [WEATHER, TIME],
      tool_choice: 'auto',
      parallel_tool_calls: false,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] }, strict: true } },
      stop: ['\n\n\n', 'END'],
      top_p: 0.9,
      seed: 42,
      temperature: 0.5,
      presence_penalty: 0.1,
      frequency_penalty: -0.1,
      max_completion_tokens: 300,
      // A whole answer is asked for whole.
      stream: false,
    });
    // After a tool result the mock answers in text: here JSON valid against the schema.
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(JSON.parse(completion.choices[0]?.message.content ?? '')).toEqual({ text: 'mock' });
  });

  it('issue 20: a named tool_choice, a string stop and a tool function given by name arrive as OpenAI defines them', async () => {
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], tools: [TIME], tool_choice: { type: 'function', function: { name: 'get_time' } }, stop: 'END' });
    expect(upstreamBodies.at(-1)).toMatchObject({ tool_choice: { type: 'function', function: { name: 'get_time' } }, stop: ['END'], tools: [TIME] });
  });

  it('issue 20: the openai client gets tool calls in a whole answer (content null, finish_reason tool_calls)', async () => {
    const completion = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'weather please' }], tools: [WEATHER], tool_choice: 'required' });
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toEqual([{ id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather', arguments: '{"city":"mock","unit":"celsius"}' } }]);
  });

  it('issue 20: the openai client gets a streamed tool call assembled by .stream() / finalChatCompletion()', async () => {
    const stream = client.chat.completions.stream({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'call get_weather and get_time' }],
      tools: [WEATHER, TIME],
      stream_options: { include_usage: true },
    });
    const done: string[] = [];
    stream.on('tool_calls.function.arguments.done', (event) => done.push(event.name));
    const final = await stream.finalChatCompletion();
    const choice = final.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.tool_calls?.map((c) => [c.type, c.function.name, c.function.arguments])).toEqual([
      ['function', 'get_weather', '{"city":"mock","unit":"celsius"}'],
      ['function', 'get_time', '{}'],
    ]);
    expect(choice.message.tool_calls?.every((c) => c.id.startsWith('call_'))).toBe(true);
    expect(done).toEqual(['get_weather', 'get_time']);
    expect(final.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('issue 20: streamed tool call chunks are shaped exactly as OpenAI sends them', async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], tools: [WEATHER], tool_choice: 'required', stream: true }),
    });
    const deltas = (await res.text())
      .split('\n\n')
      .filter((frame) => frame.startsWith('data: {'))
      .map((frame) => (JSON.parse(frame.slice(6)) as { choices: { delta: { tool_calls?: unknown[] }; finish_reason: string | null }[] }).choices[0]!);
    const calls = deltas.filter((c) => c.delta.tool_calls).map((c) => c.delta.tool_calls![0]);
    expect(calls[0]).toEqual({ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather', arguments: '' } });
    for (const later of calls.slice(1)) expect(later).toEqual({ index: 0, function: { arguments: expect.any(String) } });
    expect(calls.slice(1).map((c) => (c as { function: { arguments: string } }).function.arguments).join('')).toBe('{"city":"mock","unit":"celsius"}');
    expect(deltas.at(-1)?.finish_reason).toBe('tool_calls');
  });

  it('issue 20: runTools runs a tool the model called and sends its result back', async () => {
    const runner = client.chat.completions.runTools({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'what does get_time say?' }],
      tools: [{ type: 'function', function: { name: 'get_time', description: 'The time', parameters: { type: 'object', properties: {} }, function: () => '12:00', parse: JSON.parse } }],
    });
    const text = await runner.finalContent();
    expect(text).toMatch(/^Mock answer to: the tool result/);
    const sent = upstreamBodies.at(-1) as { messages: { role: string; tool_call_id?: string; content: unknown }[] };
    expect(sent.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool']);
    expect(sent.messages[2]).toMatchObject({ role: 'tool', content: '12:00', tool_call_id: expect.stringMatching(/^call_/) });
  });

  it('issue 20: reasoning comes back as reasoning_content, whole and streamed', async () => {
    const whole = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'think about it' }], reasoning_effort: 'low' });
    expect((whole.choices[0]?.message as { reasoning_content?: string }).reasoning_content).toMatch(/^Mock thinking about: think about it/);
    expect(upstreamBodies.at(-1)).toMatchObject({ reasoning_effort: 'low' });
    let reasoning = '';
    let text = '';
    for await (const chunk of await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'think again' }], reasoning_effort: 'high', stream: true })) {
      reasoning += (chunk.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? '';
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(reasoning).toMatch(/^Mock thinking about: think again/);
    expect(text).toMatch(/^Mock answer to: think again/);
  });

  it('issue 20: an image as a data URL over 1 MiB is carried (chat bodies may be up to 16 MiB)', async () => {
    const big = `data:image/png;base64,${'A'.repeat(1100 * 1024)}`;
    const completion = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: big } }] }] });
    expect(completion.choices[0]?.message.content).toMatch(/^Mock answer to: \(saw 1 image\) look/);
    const sent = upstreamBodies.at(-1) as { messages: { content: { image_url?: { url: string } }[] }[] };
    expect(sent.messages[0]?.content[1]?.image_url?.url).toBe(big);
  });
});

describe('/v1 refuses what it does not carry, naming the field, before any upstream call (issue 20)', () => {
  const base = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] };
  const cases: [string, Record<string, unknown>, string][] = [
    ['top_p out of range', { ...base, top_p: 5 }, 'top_p'],
    ['temperature out of range', { ...base, temperature: 3 }, 'temperature'],
    ['a tool_choice naming an unknown tool', { ...base, tools: [TIME], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice.function.name'],
    ['a tool message answering no call', { ...base, messages: [{ role: 'user', content: 'hi' }, { role: 'tool', tool_call_id: 'call_x', content: 'r' }] }, 'messages[1].tool_call_id'],
    ['n: 2', { ...base, n: 2 }, 'n'],
    ['logprobs: true', { ...base, logprobs: true }, 'logprobs'],
    ['legacy functions', { ...base, functions: [{ name: 'f' }] }, 'functions'],
    ['audio output', { ...base, modalities: ['text', 'audio'] }, 'modalities'],
    ['a field OpenAI does not define', { ...base, user_tag: 'x' }, 'user_tag'],
    ['a name on a message', { ...base, messages: [{ role: 'user', content: 'hi', name: 'bob' }] }, 'messages[0].name'],
    ['an input_audio part', { ...base, messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'x', format: 'wav' } }] }] }, 'messages[0].content[0].type'],
    ['an image URL that is not http(s) or a data URL', { ...base, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'file:///etc/passwd' } }] }] }, 'messages[0].content[0].image_url.url'],
    ['the legacy function role', { ...base, messages: [{ role: 'function', name: 'f', content: 'x' }] }, 'messages[0].role'],
    ['an unknown reasoning_effort', { ...base, reasoning_effort: 'maximum' }, 'reasoning_effort'],
    ['a json_schema without a schema', { ...base, response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 'response_format.json_schema.schema'],
    ['two tools of one name', { ...base, tools: [TIME, TIME] }, 'tools[1].function.name'],
    ['too many stop sequences', { ...base, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
  ];
  for (const [what, body, param] of cases) {
    it(`issue 20: ${what} is a 400 naming ${param}, with no upstream call`, async () => {
      const before = upstreamBodies.length;
      const { status, json } = await post(body);
      expect(status).toBe(400);
      expect(json.error).toMatchObject({ type: 'invalid_request_error', param });
      expect(json.error?.message).toContain(param);
      expect(upstreamBodies.length).toBe(before);
    });
  }

  it('issue 20: neutral values of unimplemented fields ask for nothing and are accepted (logprobs false, n 1, store false, null)', async () => {
    const { status } = await post({ ...base, logprobs: false, n: 1, store: false, service_tier: null, top_logprobs: null, user: 'u-1' });
    expect(status).toBe(200);
    // The end-user id is not forwarded.
    expect(upstreamBodies.at(-1)).not.toHaveProperty('user');
  });

  it('issue 20: an image to a model without vision in the catalog is a 400 naming the part, before any upstream call', async () => {
    const before = upstreamBodies.length;
    const error = await client.chat.completions
      .create({ model: 'text-only', messages: [{ role: 'system', content: 's' }, { role: 'user', content: [{ type: 'image_url', image_url: { url: PNG } }] }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const e = error as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.error).toMatchObject({ type: 'invalid_request_error', code: 'bad_request', param: 'messages[1].content' });
    expect(e.message).toMatch(/vision/);
    // A reasoning effort to a model without reasoning: named as the wire names it.
    const reasoning = (await client.chat.completions.create({ model: 'text-only', messages: [{ role: 'user', content: 'x' }], reasoning_effort: 'high' }).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(reasoning.error).toMatchObject({ param: 'reasoning_effort' });
    expect(upstreamBodies.length).toBe(before);
  });

  it('issue 20: a fallback model that lacks a capability the request needs is skipped', async () => {
    const image = { role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: PNG } }] };
    const served = await client.chat.completions.create({ model: 'claude-keyless', messages: [image] });
    expect(served.model).toBe('gpt-4o');
    const plain = await client.chat.completions.create({ model: 'claude-keyless', messages: [{ role: 'user', content: 'hi' }] });
    expect(plain.model).toBe('text-only');
  });

  it('issue 20: random invalid requests get a 400 naming the field and no upstream call (property)', async () => {
    const invalid = fc.oneof(
      fc.double({ min: 1.0001, max: 1e6, noNaN: true }).map((v) => [{ top_p: v }, 'top_p'] as const),
      fc.double({ min: 2.0001, max: 1e6, noNaN: true }).map((v) => [{ temperature: v }, 'temperature'] as const),
      fc.integer({ min: 2, max: 128 }).map((v) => [{ n: v }, 'n'] as const),
      fc.double({ min: 2.0001, max: 100, noNaN: true }).map((v) => [{ presence_penalty: v }, 'presence_penalty'] as const),
      fc.constantFrom('logprobs', 'audio', 'prediction', 'web_search_options', 'function_call', 'verbosity').map((k) => [{ [k]: { on: true } }, k] as const),
      fc.stringMatching(/^[a-z]{3,12}_x$/).map((k) => [{ [k]: 1 }, k] as const),
      fc.stringMatching(/^call_[a-z0-9]{4,10}$/).map((id) => [{ messages: [{ role: 'user', content: 'q' }, { role: 'tool', tool_call_id: id, content: 'r' }] }, 'messages[1].tool_call_id'] as const),
    );
    await fc.assert(
      fc.asyncProperty(invalid, async ([extra, param]) => {
        const before = upstreamBodies.length;
        const { status, json } = await post({ ...base, ...extra });
        expect(status).toBe(400);
        expect(json.error?.param).toBe(param);
        expect(upstreamBodies.length).toBe(before);
      }),
      { numRuns: 30 },
    );
  });
});

describe('GET /v1/models/{id} (issue 20)', () => {
  it("issue 20: answers OpenAI's model object, by id or provider/model, and 404 model_not_found when unknown", async () => {
    expect(await client.models.retrieve('gpt-4o')).toMatchObject({ id: 'gpt-4o', object: 'model', owned_by: 'openai' });
    const qualified = await fetch(`${gw.url}/v1/models/openai/text-only`, { headers: { authorization: `Bearer ${token}` } });
    expect(await qualified.json()).toMatchObject({ id: 'text-only', object: 'model' });
    const error = await client.models.retrieve('nope').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).error).toMatchObject({ code: 'model_not_found', type: 'invalid_request_error', param: 'model' });
    const anonymous = await fetch(`${gw.url}/v1/models/gpt-4o`);
    expect(anonymous.status).toBe(401);
  });
});
