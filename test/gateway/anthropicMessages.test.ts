import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actualCost } from '../../server/business/cost';
import { createLogger } from '../../server/observability/logger';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { captureLines, waitFor } from '../ops/waitFor';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue 21: Anthropic's Messages API at POST /v1/messages, driven by the official
 * `@anthropic-ai/sdk` against a real gateway over HTTP in front of the mock provider, served by
 * a pool of two Anthropic keys.
 */

const KEYS = ['sk-test-anthropic-messages-key-one-0001', 'sk-test-anthropic-messages-key-two-0002'] as const;
const DIRECT_KEY = 'sk-test-anthropic-direct-to-the-mock-0003';
const BYOK_KEY = 'sk-test-anthropic-byok-of-carol-0005';
/** Turns BYOK on (a test value, 32 bytes in hex). */
const ENCRYPTION_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

let mock: MockProvider;
let gw: TestGateway;
const logs = captureLines();
/** Every body the gateway answered with, scanned for the keys at the end. */
const captured: string[] = [];

/** The SDK pointed at Keyrack, every request and answer body kept. */
function anthropicFor(auth: { apiKey: string } | { authToken: string }): Anthropic {
  return new Anthropic({
    baseURL: gw.url,
    ...('apiKey' in auth ? { apiKey: auth.apiKey } : { authToken: auth.authToken, apiKey: null }),
    maxRetries: 0,
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      captured.push(JSON.stringify([...res.headers]));
      const copy = res.clone();
      copy.text().then((text) => captured.push(text), () => undefined);
      return res;
    },
  });
}

/** The SDK talking to the mock itself: what Anthropic would answer. */
const direct = () => new Anthropic({ baseURL: mock.baseUrls.anthropic, apiKey: DIRECT_KEY, maxRetries: 0 });

let client: Anthropic;

beforeAll(async () => {
  mock = await startMockProvider();
  gw = await startTestGateway({
    env: { ANTHROPIC_API_KEY_1: KEYS[0], ANTHROPIC_API_KEY_2: KEYS[1], ANTHROPIC_BASE_URL: mock.baseUrls.anthropic, OPENAI_API_KEY: 'sk-test-openai-unused-0000000000004', OPENAI_BASE_URL: mock.baseUrls.openai, ENCRYPTION_KEY },
    logger: createLogger({ level: 'debug', destination: logs.destination }),
    models: [
      testModel('claude-sonnet-4', 'anthropic', { upstream_model: 'claude-sonnet-4-20250514', display_name: 'Claude Sonnet 4', input_price: 3, output_price: 15 }),
      testModel('claude-text-only', 'anthropic', { upstream_model: 'claude-3-haiku-20240307', capabilities: { tools: true, vision: false, json_schema: false, reasoning: false } }),
      testModel('gpt-4o', 'openai'),
    ],
  });
  client = anthropicFor({ apiKey: await gw.token('alice') });
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
});

type APIError = InstanceType<typeof Anthropic.APIError>;

/** The `error.message` of Anthropic's error body, as the SDK keeps it in `error`. */
const errorMessage = (e: unknown) => ((e as APIError).error as { error?: { message?: string } } | undefined)?.error?.message;

const ask = (text: string) => ({ model: 'claude-sonnet-4', max_tokens: 256, messages: [{ role: 'user' as const, content: text }] });

describe('issue 21: POST /v1/messages with the official Anthropic SDK', () => {
  it('answers whole: the mock\'s text, the client\'s model name, usage and a request-id', async () => {
    const { data: message, response } = await client.messages.create(ask('whole answer please')).withResponse();
    const expected = await direct().messages.create({ ...ask('whole answer please'), model: 'claude-sonnet-4-20250514' });
    expect(message.type).toBe('message');
    expect(message.model).toBe('claude-sonnet-4');
    expect(message.content).toEqual(expected.content);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage.input_tokens).toBe(expected.usage.input_tokens);
    expect(message.usage.output_tokens).toBe(expected.usage.output_tokens);
    expect(response.headers.get('request-id')).toBe(response.headers.get('x-request-id'));
  });

  it('streams Anthropic\'s events as Anthropic sends them; .stream() and finalMessage() work', async () => {
    const stream = client.messages.stream(ask('stream this one'));
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    const final = await stream.finalMessage();
    expect(types[0]).toBe('message_start');
    expect(types.at(-1)).toBe('message_stop');
    expect(types).toContain('content_block_delta');
    expect(types.indexOf('message_delta')).toBe(types.length - 2);
    const expected = await direct().messages.create({ ...ask('stream this one'), model: 'claude-sonnet-4-20250514' });
    expect(final.content).toEqual(expected.content);
    expect(final.model).toBe('claude-sonnet-4');
    expect(final.usage.input_tokens).toBe(expected.usage.input_tokens);
    expect(final.usage.output_tokens).toBe(expected.usage.output_tokens);

    // And `stream: true` on create, read event by event.
    let text = '';
    for await (const event of await client.messages.create({ ...ask('stream this one'), stream: true })) {
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text;
    }
    expect(text).toBe((expected.content[0] as Anthropic.TextBlock).text);
  });

  it('relays the event bytes unchanged but for message_start\'s model', async () => {
    const token = await gw.token('alice');
    const body = JSON.stringify({ ...ask('bytes please'), stream: true });
    const [ours, theirs] = await Promise.all([
      fetch(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': token, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }, body }).then((r) => r.text()),
      fetch(`${mock.baseUrls.anthropic}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': DIRECT_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: body.replace('claude-sonnet-4', 'claude-sonnet-4-20250514'),
      }).then((r) => r.text()),
    ]);
    const [ourStart, ...ourRest] = ours.split('\n\n');
    const [theirStart, ...theirRest] = theirs.split('\n\n');
    // Ids differ per request (msg_mock<serial>); everything else is the same bytes.
    const withoutIds = (frames: string[]) => frames.join('\n\n').replace(/msg_mock\d+/g, 'msg');
    expect(withoutIds(ourRest)).toBe(withoutIds(theirRest));
    const start = (frame: string) => JSON.parse(frame.split('data: ')[1]!) as { message: { model: string; usage: unknown } };
    expect(start(ourStart!).message.model).toBe('claude-sonnet-4');
    expect(start(ourStart!).message.usage).toEqual(start(theirStart!).message.usage);
  });

  it('carries a tool conversation: tool_use, then tool_result, then the answer', async () => {
    const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Weather in a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
    const first = await client.messages.stream({ ...ask('weather in Paris?'), tools, tool_choice: { type: 'any' } }).finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    const call = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    expect(call?.name).toBe('get_weather');
    expect(call?.input).toMatchObject({ city: expect.any(String) });
    const second = await client.messages.create({
      ...ask('weather in Paris?'),
      tools,
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call!.id, content: 'sunny, 21 C' }] },
      ],
    });
    expect(second.stop_reason).toBe('end_turn');
    // The mock answers a tool result by echoing it.
    expect((second.content[0] as Anthropic.TextBlock).text).toMatch(/^Mock answer to: the tool result sunny, 21 C/);
  });

  it('carries an image block and a system prompt', async () => {
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';
    const message = await client.messages.create({
      ...ask('x'),
      system: [{ type: 'text', text: 'You describe images.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }, { type: 'text', text: 'what is this?' }] }],
    });
    const expected = await direct().messages.create({
      model: 'claude-sonnet-4-20250514',
      max_tokens: 256,
      system: [{ type: 'text', text: 'You describe images.' }],
      messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }, { type: 'text', text: 'what is this?' }] }],
    });
    expect(message.content).toEqual(expected.content);
    // The catalog says the text-only model has no vision: refused before any upstream call, naming the block.
    const error = await client.messages
      .create({ ...ask('x'), model: 'claude-text-only', messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }] }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect(errorMessage(error)).toMatch(/^messages\.0\.content\.0: /);
  });

  it('carries thinking: the thinking block with its signature, whole and streamed, and sends it back', async () => {
    const request = { ...ask('think first'), max_tokens: 2048, thinking: { type: 'enabled' as const, budget_tokens: 1024 } };
    const whole = await client.messages.create(request);
    const thought = whole.content[0] as Anthropic.ThinkingBlock;
    expect(thought.type).toBe('thinking');
    expect(thought.thinking).toMatch(/^Mock thinking about: think first/);
    expect(thought.signature).not.toBe('');
    const streamed = await client.messages.stream(request).finalMessage();
    expect(streamed.content[0]).toMatchObject({ type: 'thinking', thinking: thought.thinking, signature: expect.any(String) });
    const next = await client.messages.create({ ...request, messages: [{ role: 'user', content: 'think first' }, { role: 'assistant', content: whole.content }, { role: 'user', content: 'and then?' }] });
    expect(next.content.some((b) => b.type === 'text')).toBe(true);
  });

  it('takes the Keyrack token as x-api-key or as Authorization: Bearer; a bad one is a 401 in Anthropic\'s shape', async () => {
    const bearer = anthropicFor({ authToken: await gw.token('bearer-user') });
    expect((await bearer.messages.create(ask('bearer'))).type).toBe('message');
    for (const bad of [anthropicFor({ apiKey: 'not-a-jwt' }), anthropicFor({ authToken: 'not-a-jwt' })]) {
      const error = await bad.messages.create(ask('nope')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
      expect((error as APIError).error).toMatchObject({ type: 'error', error: { type: 'authentication_error' }, request_id: expect.any(String) });
    }
  });

  it('an unknown field is a 400 naming it, at the top and inside a block; nothing reaches the mock', async () => {
    const before = mock.stats().total.requests;
    const top = await client.messages.create({ ...ask('x'), frequency_penalty: 1 } as Anthropic.MessageCreateParamsNonStreaming).catch((e: unknown) => e);
    expect(top).toBeInstanceOf(Anthropic.BadRequestError);
    expect((top as APIError).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: 'frequency_penalty: Extra inputs are not permitted' } });
    const nested = await client.messages
      .create({ ...ask('x'), messages: [{ role: 'user', content: [{ type: 'text', text: 'x', colour: 'blue' } as Anthropic.TextBlockParam] }] })
      .catch((e: unknown) => e);
    expect(errorMessage(nested)).toMatch(/messages\.0\.content\.0\.colour: Extra inputs are not permitted/);
    const missing = await client.messages.create({ model: 'claude-sonnet-4', messages: [{ role: 'user', content: 'x' }] } as unknown as Anthropic.MessageCreateParamsNonStreaming).catch((e: unknown) => e);
    expect(errorMessage(missing)).toMatch(/max_tokens: Field required/);
    const file = await client.messages
      .create({ ...ask('x'), messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'file_123' } } as unknown as Anthropic.ImageBlockParam] }] })
      .catch((e: unknown) => e);
    expect(errorMessage(file)).toMatch(/messages\.0\.content\.0\.source: .*Files API/);
    expect(mock.stats().total.requests).toBe(before);
  });

  it('a model whose provider is not Anthropic is a 400 naming model; an unknown one a 404', async () => {
    const other = await client.messages.create({ ...ask('x'), model: 'gpt-4o' }).catch((e: unknown) => e);
    expect(other).toBeInstanceOf(Anthropic.BadRequestError);
    expect(errorMessage(other)).toMatch(/^model: gpt-4o is served by openai/);
    const unknown = await client.messages.create({ ...ask('x'), model: 'claude-nope' }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError);
  });

  it('the prompt limits apply: a prompt over the hard limit is a 400 before any upstream call', async () => {
    const before = mock.stats().total.requests;
    // ~12,000 o200k tokens against the default hard limit of 10,000, in a tool result's text.
    const long = 'alpha beta '.repeat(6_000);
    const error = await client.messages
      .create({
        ...ask('x'),
        messages: [
          { role: 'user', content: 'look it up' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'lookup', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: long }] }] },
        ],
        tools: [{ name: 'lookup', input_schema: { type: 'object' } }],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect(errorMessage(error)).toMatch(/^prompt is too long: .*10000 tokens/);
    expect(mock.stats().total.requests).toBe(before);
  });

  it('a 429 on one key moves to the other before the first event reaches the client', async () => {
    mock.faults.inject(KEYS[0], { kind: 'rateLimit', retryAfterSeconds: 30 }, { sticky: true });
    try {
      // Round-robin tries the faulted key within two requests; every answer is whole all the same.
      for (let i = 0; i < 4 && mock.statsFor(KEYS[0]).total.rateLimited === 0; i++) {
        const types: string[] = [];
        const stream = client.messages.stream(ask(`retry ${i}`));
        for await (const event of stream) types.push(event.type);
        expect(types[0]).toBe('message_start');
        expect(types.filter((t) => t === 'message_start')).toHaveLength(1);
        expect((await stream.finalMessage()).stop_reason).toBe('end_turn');
      }
      expect(mock.statsFor(KEYS[0]).total.rateLimited).toBe(1);
      expect(mock.statsFor(KEYS[1]).total.completed).toBeGreaterThan(0);
    } finally {
      mock.faults.clear(KEYS[0]);
    }
  });

  it('a 529 overloaded_error on both keys is retried until a key answers', async () => {
    const user = anthropicFor({ apiKey: await gw.token('overload-user') });
    mock.faults.inject(KEYS[0], { kind: 'overloaded' }, { times: 1 });
    mock.faults.inject(KEYS[1], { kind: 'overloaded' }, { times: 1 });
    const final = await user.messages.stream(ask('overloaded?')).finalMessage();
    expect(final.stop_reason).toBe('end_turn');
  });

  it('a stream that breaks after its start ends with an error event and is billed for what it produced', async () => {
    const user = anthropicFor({ apiKey: await gw.token('cut-user') });
    for (const key of KEYS) mock.faults.inject(key, { kind: 'streamError', afterChunks: 2, error: 'overloaded' }, { times: 1 });
    // Anthropic's own error event, relayed as it came.
    const overloaded = await user.messages.stream(ask('break off please')).finalMessage().catch((e: unknown) => e);
    expect(overloaded).toBeInstanceOf(Anthropic.APIError);
    expect((overloaded as APIError).error).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
    for (const key of KEYS) mock.faults.clear(key);
    // A connection cut: Keyrack's error event ends the stream.
    for (const key of KEYS) mock.faults.inject(key, { kind: 'cutStream', afterChunks: 2 }, { times: 1 });
    const cut = await user.messages.stream(ask('cut me off')).finalMessage().catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(Anthropic.APIError);
    expect((cut as APIError).error).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    for (const key of KEYS) mock.faults.clear(key);
    const ledger = gw.gateway.deps.domain!.ledger;
    const today = new Date().toISOString().slice(0, 10);
    await waitFor(async () => (await ledger.mine('cut-user', { from: today, to: today })).requests === 2, 'both cut answers recorded');
    const usage = await ledger.mine('cut-user', { from: today, to: today });
    expect(usage.inputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeGreaterThan(0);
    expect(usage.costUsd).toBeGreaterThan(0);
  });

  it('a user\'s own Anthropic key (BYOK) serves their Messages calls before the pool', async () => {
    const token = await gw.token('carol');
    await gw.trpc(token).byok.add.mutate({ provider: 'anthropic', apiKey: BYOK_KEY });
    const pool = () => mock.statsFor(KEYS[0]).total.requests + mock.statsFor(KEYS[1]).total.requests;
    const [own, shared] = [mock.statsFor(BYOK_KEY).total.requests, pool()];
    const carol = anthropicFor({ apiKey: token });
    await carol.messages.create(ask('my own key'));
    await carol.messages.stream(ask('my own key, streamed')).finalMessage();
    expect(mock.statsFor(BYOK_KEY).total.requests).toBe(own + 2);
    expect(pool()).toBe(shared);
  });

  it('a client that goes away mid-stream stops the upstream call, and what streamed is billed', async () => {
    mock.configure({ chunkDelayMs: 20, chunkCount: 500 });
    try {
      const aborted = mock.nextEvent('aborted', { provider: 'anthropic' });
      const controller = new AbortController();
      const user = anthropicFor({ apiKey: await gw.token('leaver') });
      const stream = await user.messages.create({ ...ask('long answer'), max_tokens: 1000, stream: true }, { signal: controller.signal });
      let deltas = 0;
      await (async () => {
        for await (const event of stream) if (event.type === 'content_block_delta' && ++deltas === 3) controller.abort();
      })().catch(() => undefined);
      await aborted;
      const ledger = gw.gateway.deps.domain!.ledger;
      const today = new Date().toISOString().slice(0, 10);
      await waitFor(async () => (await ledger.mine('leaver', { from: today, to: today })).requests === 1, 'the cut answer recorded');
      const usage = await ledger.mine('leaver', { from: today, to: today });
      expect(usage.outputTokens).toBeGreaterThan(0);
      expect(usage.outputTokens).toBeLessThan(500);
    } finally {
      mock.configure({ chunkDelayMs: 0, chunkCount: null });
    }
  });

  it('the usage ledger shows the call with its cost', async () => {
    const user = anthropicFor({ apiKey: await gw.token('ledger-user') });
    const message = await user.messages.create(ask('count me'));
    const streamed = await user.messages.stream(ask('count me too')).finalMessage();
    const ledger = gw.gateway.deps.domain!.ledger;
    const today = new Date().toISOString().slice(0, 10);
    await waitFor(() => ledger.pending === 0, 'the usage written');
    const usage = await ledger.mine('ledger-user', { from: today, to: today });
    expect(usage.requests).toBe(2);
    expect(usage.inputTokens).toBe(message.usage.input_tokens + streamed.usage.input_tokens);
    expect(usage.outputTokens).toBe(message.usage.output_tokens + streamed.usage.output_tokens);
    const settings = await gw.gateway.business.getSettings();
    const price = { provider: 'anthropic' as const, inputPrice: 3, outputPrice: 15 };
    const cost = (m: Anthropic.Message) => actualCost(price, { inputTokens: m.usage.input_tokens, outputTokens: m.usage.output_tokens, cachedInputTokens: 0 }, settings);
    expect(usage.costUsd).toBeCloseTo(cost(message) + cost(streamed), 9);
  });

  it('a used-up budget is a 402 billing_error the SDK does not retry', async () => {
    const root = gw.trpc(await gw.token('root', 'admin'));
    await root.users.setLimits.mutate({ userId: 'broke-user', limits: { dailyBudgetUsd: 0.000001 } });
    let sent = 0;
    const broke = new Anthropic({ baseURL: gw.url, apiKey: await gw.token('broke-user'), maxRetries: 2, fetch: (input, init) => (sent++, fetch(input, init)) });
    // The first answer is admitted (spent 0) and spends more than the budget; its record lands.
    await broke.messages.create(ask('spend'));
    const ledger = gw.gateway.deps.domain!.ledger;
    await waitFor(() => ledger.pending === 0, 'the usage written');
    const before = mock.stats().total.requests;
    const error = await broke.messages.create(ask('spend')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect((error as APIError).status).toBe(402);
    expect((error as APIError).error).toMatchObject({ type: 'error', error: { type: 'billing_error' } });
    // One request for the answer, one refused: the SDK did not retry the refusal.
    expect(sent).toBe(2);
    expect(mock.stats().total.requests).toBe(before);
  });

  it('counts tokens through the pool (count_tokens), as the mock counts the same prompt', async () => {
    const counted = await client.messages.countTokens({ model: 'claude-sonnet-4', messages: [{ role: 'user', content: 'how many tokens is this?' }] });
    const message = await client.messages.create(ask('how many tokens is this?'));
    expect(counted.input_tokens).toBe(message.usage.input_tokens);
  });

  it('models.list and models.retrieve answer in Anthropic\'s shape; OpenAI clients keep OpenAI\'s', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list({ limit: 1 })) ids.push(model.id);
    expect(ids.sort()).toEqual(['claude-sonnet-4', 'claude-text-only']);
    const model = await client.models.retrieve('claude-sonnet-4');
    expect(model).toMatchObject({ type: 'model', id: 'claude-sonnet-4', display_name: 'Claude Sonnet 4' });
    expect(await client.models.retrieve('gpt-4o').catch((e: unknown) => e)).toBeInstanceOf(Anthropic.NotFoundError);
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: await gw.token('alice'), maxRetries: 0 });
    const openaiIds: string[] = [];
    for await (const m of openai.models.list()) openaiIds.push(m.object + ':' + m.id);
    expect(openaiIds.sort()).toEqual(['model:claude-sonnet-4', 'model:claude-text-only', 'model:gpt-4o']);
  });

  it('no provider key appears in any answer or log line', async () => {
    await waitFor(async () => captured.length > 20, 'bodies captured');
    const secrets = [...KEYS, BYOK_KEY, ENCRYPTION_KEY, 'sk-test-openai-unused-0000000000004'];
    for (const text of [...captured, ...logs.lines]) for (const secret of secrets) expect(text).not.toContain(secret);
    expect(logs.lines.length).toBeGreaterThan(0);
  });
});
