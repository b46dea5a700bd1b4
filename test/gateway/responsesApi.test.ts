import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { actualCost } from '../../server/business/cost';
import { createLogger } from '../../server/observability/logger';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { captureLines, waitFor } from '../ops/waitFor';
import { startTestGateway, TEST_JWT_SECRET, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue 21: OpenAI's Responses API at POST /v1/responses, through the official openai client
 * against a real gateway over HTTP, in front of the mock provider (two OpenAI keys).
 */

const KEYS = ['sk-test-responses-key-one-0000000001', 'sk-test-responses-key-two-0000000002'] as const;
const BYOK_KEY = 'sk-test-responses-byok-gina-00000001';
const ENCRYPTION_KEY = randomBytes(32).toString('base64');

let mock: MockProvider;
let gw: TestGateway;
let client: OpenAI;
const logs = captureLines();
/** Every body the tests read from the gateway, scanned for secrets at the end. */
const captured: string[] = [];

const weatherTool = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'Weather of a city',
  strict: true,
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
};

beforeAll(async () => {
  mock = await startMockProvider();
  gw = await startTestGateway({
    env: {
      OPENAI_API_KEY_1: KEYS[0],
      OPENAI_API_KEY_2: KEYS[1],
      OPENAI_BASE_URL: mock.baseUrls.openai,
      ANTHROPIC_API_KEY: 'sk-test-responses-anthropic-000001',
      XAI_API_KEY: 'sk-test-responses-xai-0000000001',
      XAI_BASE_URL: mock.baseUrls.openai,
      GROQ_API_KEY: 'sk-test-responses-groq-000000001',
      GROQ_BASE_URL: mock.baseUrls.openai,
      ENCRYPTION_KEY,
    },
    logger: createLogger({ level: 'debug', destination: logs.destination }),
    models: [
      // The upstream id asks the mock for 7 words: an answer of 7 proves the catalog's id was sent.
      testModel('gpt-4o', 'openai', { upstream_model: 'gpt-4o-mock-chunks-7' }),
      testModel('claude-sonnet-4', 'anthropic'),
      // xAI and Groq speak OpenAI's wire: served by the mock's OpenAI face.
      testModel('grok-3', 'xai'),
      testModel('llama-3.3-70b', 'groq'),
    ],
  });
  client = gw.openai(await gw.token('alice'));
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
});
beforeEach(() => mock.faults.clear());

async function caught(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof OpenAI.APIError) {
      captured.push(JSON.stringify(error.error ?? null), error.message);
      return error;
    }
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('issue 21: POST /v1/responses through the official openai client', () => {
  it('answers a whole response: output_text, the catalog model, usage, store: false sent', async () => {
    const response = await client.responses.create({ model: 'gpt-4o', input: 'hello responses' });
    captured.push(JSON.stringify(response));
    expect(response.object).toBe('response');
    expect(response.id).toMatch(/^resp_/);
    expect(response.model).toBe('gpt-4o');
    expect(response.output_text).toMatch(/^Mock answer to: hello responses/);
    expect(response.output_text.split(' ')).toHaveLength(7);
    expect(response.usage?.output_tokens).toBe(7);
    // The mock echoes what it was sent: Keyrack asked OpenAI not to store the response.
    expect((response as unknown as { store: boolean }).store).toBe(false);
  });

  it('streams the events in order, numbered, and finalResponse() assembles them', async () => {
    const stream = client.responses.stream({ model: 'gpt-4o', instructions: 'Be brief.', input: [{ role: 'user', content: 'stream this' }] });
    const types: string[] = [];
    const numbers: number[] = [];
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      numbers.push(event.sequence_number);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    const final = await stream.finalResponse();
    captured.push(JSON.stringify(final));
    expect(types.slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(types.filter((t) => t === 'response.output_text.delta')).toHaveLength(7);
    expect(types.at(-1)).toBe('response.completed');
    expect(numbers).toEqual(numbers.map((_, i) => i));
    expect(final.model).toBe('gpt-4o');
    expect(final.instructions).toBe('Be brief.');
    expect(final.output_text).toBe(text);
    expect(text).toMatch(/^Mock answer to: stream this/);
  });

  it('streams with create({ stream: true }) too', async () => {
    const stream = await client.responses.create({ model: 'gpt-4o', input: 'plain stream', stream: true });
    const events = [];
    for await (const event of stream) events.push(event);
    const completed = events.at(-1);
    expect(completed?.type).toBe('response.completed');
    if (completed?.type !== 'response.completed') throw new Error('no completed event');
    expect(completed.response.model).toBe('gpt-4o');
    expect(completed.response.usage?.output_tokens).toBe(7);
  });

  it('runs a function tool round trip: function_call, then function_call_output answered in text', async () => {
    const first = await client.responses.create({ model: 'gpt-4o', instructions: 'Use tools.', input: 'what does get_weather say for Paris?', tools: [weatherTool] });
    const call = first.output.find((item) => item.type === 'function_call');
    if (call?.type !== 'function_call') throw new Error('no function call');
    expect(call.name).toBe('get_weather');
    expect(JSON.parse(call.arguments)).toEqual({ city: 'mock' });
    const second = await client.responses.create({
      model: 'gpt-4o',
      instructions: 'Use tools.',
      tools: [weatherTool],
      // The SDK's usual loop: the earlier output items sent back, then the call's output.
      input: [{ role: 'user', content: 'what does get_weather say for Paris?' }, ...(first.output as OpenAI.Responses.ResponseInputItem[]), { type: 'function_call_output', call_id: call.call_id, output: '{"temp":21}' }],
    });
    captured.push(JSON.stringify(first), JSON.stringify(second));
    expect(second.output_text).toMatch(/^Mock answer to: the tool result/);
  });

  it('refuses a model whose provider has no Responses API: 400 naming model', async () => {
    const error = await caught(client.responses.create({ model: 'claude-sonnet-4', input: 'x' }));
    expect(error.status).toBe(400);
    expect(error.param).toBe('model');
    expect(error.message).toMatch(/anthropic.*no Responses API.*\/v1\/chat\/completions/);
  });

  it('refuses an unknown model with 404 naming model', async () => {
    const error = await caught(client.responses.create({ model: 'no-such-model', input: 'x' }));
    expect(error.status).toBe(404);
    expect(error.param).toBe('model');
  });

  it('refuses an unknown field and a refused field with 400 naming the param, before any upstream call', async () => {
    const before = mock.stats().total.requests;
    const unknown = await caught(client.responses.create({ model: 'gpt-4o', input: 'x', frobnicate: 1 } as never));
    expect(unknown).toMatchObject({ status: 400, param: 'frobnicate' });
    const stored = await caught(client.responses.create({ model: 'gpt-4o', input: 'x', store: true }));
    expect(stored).toMatchObject({ status: 400, param: 'store' });
    expect(stored.message).toMatch(/one key/);
    const chained = await caught(client.responses.create({ model: 'gpt-4o', input: 'x', previous_response_id: 'resp_123' }));
    expect(chained).toMatchObject({ status: 400, param: 'previous_response_id' });
    const hosted = await caught(client.responses.create({ model: 'gpt-4o', input: 'x', tools: [{ type: 'web_search' }] }));
    expect(hosted).toMatchObject({ status: 400, param: 'tools[0].type' });
    expect(mock.stats().total.requests).toBe(before);
  });

  it('moves to the next key on a 429 before the first event', async () => {
    const [limited, good] = KEYS;
    mock.faults.inject(limited, { kind: 'rateLimit', retryAfterSeconds: 30 }, { sticky: true });
    const before = { limited: mock.statsFor(limited).total.rateLimited, good: mock.statsFor(good).total.completed };
    // Round robin over two keys: one of two requests is picked on the limited key first.
    for (let i = 0; i < 2; i += 1) {
      const stream = client.responses.stream({ model: 'gpt-4o', input: `retry ${i}` });
      const types: string[] = [];
      for await (const event of stream) types.push(event.type);
      // The failed attempt left no trace: the client's stream starts at its beginning.
      expect(types[0]).toBe('response.created');
      expect((await stream.finalResponse()).output_text).toMatch(new RegExp(`^Mock answer to: retry ${i}`));
    }
    expect(mock.statsFor(limited).total.rateLimited - before.limited).toBe(1);
    // Counted when the mock's response closes, which may follow the client's last byte.
    await waitFor(() => mock.statsFor(good).total.completed - before.good === 2, 'two answers from the good key');
    // The limited key cools down from the 429's retry-after.
    const status = await gw.gateway.deps.pool.status();
    const openai = status.providers.find((p) => p.provider === 'openai')!;
    expect(openai.keys.filter((k) => k.status === 'cooling')).toEqual([expect.objectContaining({ reason: 'rate_limited', mask: expect.not.stringContaining(limited) })]);
    mock.faults.clear();
  });

  it('records the call in the usage ledger at the catalog price', async () => {
    const carol = gw.openai(await gw.token('carol'));
    const response = await carol.responses.create({ model: 'gpt-4o', input: 'price this' });
    const usage = response.usage!;
    const model = (await gw.gateway.deps.catalog.resolve('gpt-4o'))!;
    const settings = await gw.gateway.deps.domain!.business.getSettings();
    const expected = actualCost(model, { inputTokens: usage.input_tokens, outputTokens: usage.output_tokens, cachedInputTokens: 0 }, settings);
    // The test catalog's prices ($1 in, $2 out per million) with the default 30% markup.
    expect(expected).toBeCloseTo(((usage.input_tokens * 1 + usage.output_tokens * 2) / 1e6) * 1.3, 9);
    expect(expected).toBeGreaterThan(0);
    const trpc = gw.trpc(await gw.token('carol'));
    await waitFor(async () => (await trpc.usage.mine.query()).requests === 1, 'the ledger record');
    const mine = await trpc.usage.mine.query();
    expect(mine.inputTokens).toBe(usage.input_tokens);
    expect(mine.outputTokens).toBe(usage.output_tokens);
    expect(mine.costUsd).toBeCloseTo(expected, 9);
  });

  it('records a streamed call from its response.completed usage', async () => {
    const dan = gw.openai(await gw.token('dan'));
    const final = await dan.responses.stream({ model: 'gpt-4o', input: 'stream and price' }).finalResponse();
    const trpc = gw.trpc(await gw.token('dan'));
    await waitFor(async () => (await trpc.usage.mine.query()).requests === 1, 'the ledger record');
    expect((await trpc.usage.mine.query()).outputTokens).toBe(final.usage?.output_tokens);
  });

  it('refuses a user over their daily budget with 429 before any upstream call', async () => {
    await gw.trpc(await gw.token('root', 'admin')).users.setLimits.mutate({ userId: 'erin', limits: { dailyBudgetUsd: 0 } });
    const before = mock.stats().total.requests;
    const error = await caught(gw.openai(await gw.token('erin')).responses.create({ model: 'gpt-4o', input: 'x' }));
    expect(error.status).toBe(429);
    expect(error.code).toBe('budget_exceeded');
    expect(Number(error.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(mock.stats().total.requests).toBe(before);
  });

  it('ends a stream cut after its start with an error event, never retried, billed for what was produced', async () => {
    // Whichever key is picked cuts the stream after two deltas.
    for (const key of KEYS) mock.faults.inject(key, { kind: 'cutStream', afterChunks: 2 }, { times: 1 });
    const before = mock.stats().total.requests;
    const res = await fetch(`${gw.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await gw.token('frank')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', input: 'cut me', stream: true }),
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    captured.push(text);
    const frames = text.split('\n\n').filter(Boolean);
    expect(frames.filter((f) => f.startsWith('event: response.output_text.delta'))).toHaveLength(2);
    const last = frames.at(-1)!;
    expect(last.startsWith('event: error\n')).toBe(true);
    const error = JSON.parse(last.split('data: ')[1]!) as { type: string; code: string; sequence_number: number };
    expect(error).toMatchObject({ type: 'error', code: 'stream_interrupted', sequence_number: frames.length - 1 });
    expect(mock.stats().total.requests - before).toBe(1);
    const trpc = gw.trpc(await gw.token('frank'));
    await waitFor(async () => (await trpc.usage.mine.query()).requests === 1, 'the cut call billed');
    expect((await trpc.usage.mine.query()).outputTokens).toBeGreaterThan(0);
    mock.faults.clear();
  });

  it("relays the provider's own mid-stream error event once", async () => {
    for (const key of KEYS) mock.faults.inject(key, { kind: 'streamError', afterChunks: 1, error: 'serverError' }, { times: 1 });
    const res = await fetch(`${gw.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await gw.token('alice')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', input: 'fail midway', stream: true }),
    });
    const text = await res.text();
    captured.push(text);
    const errors = text.split('\n\n').filter((f) => f.startsWith('event: error\n'));
    expect(errors).toHaveLength(1);
    expect(JSON.parse(errors[0]!.split('data: ')[1]!)).toMatchObject({ type: 'error', code: 'server_error' });
    mock.faults.clear();
  });

  it('refuses what the provider refuses with a 400, never retried', async () => {
    // The mock, as OpenAI, wants max_output_tokens >= 16; Keyrack only checks it is a positive integer.
    const before = mock.stats().total.requests;
    const error = await caught(client.responses.create({ model: 'gpt-4o', input: 'x', max_output_tokens: 5 }));
    expect(error.status).toBe(400);
    // The caller's fault: not tried on the other key.
    expect(mock.stats().total.requests - before).toBe(1);
    expect(error.type).toBe('invalid_request_error');
  });

  it('refuses a prompt over the hard limit with 400 naming input', async () => {
    const business = gw.gateway.deps.domain!.business;
    const { prompt_hard_limit: hard, prompt_soft_limit: soft } = await business.getSettings();
    await business.setConfig('prompt_soft_limit', 20);
    await business.setConfig('prompt_hard_limit', 50);
    try {
      const error = await caught(client.responses.create({ model: 'gpt-4o', instructions: 'word '.repeat(100), input: 'x' }));
      expect(error).toMatchObject({ status: 400, param: 'input', code: 'prompt_too_long' });
    } finally {
      await business.setConfig('prompt_hard_limit', hard);
      await business.setConfig('prompt_soft_limit', soft);
    }
  });

  it('takes a body over 1 MiB (an image as a data URL), as chat does', async () => {
    const image = `data:image/png;base64,${'A'.repeat(1_200_000)}`;
    const response = await client.responses.create({
      model: 'gpt-4o',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'what is this?' }, { type: 'input_image', image_url: image, detail: 'low' }] }],
    });
    expect(response.output_text).toMatch(/^Mock answer to: \(saw 1 image\) what/);
  });

  it('serves xAI and Groq through their Responses APIs; store: false only where the provider would store', async () => {
    const grok = await client.responses.create({ model: 'grok-3', input: 'hi grok' });
    expect(grok.model).toBe('grok-3');
    expect((grok as unknown as { store: boolean }).store).toBe(false);
    await waitFor(() => mock.statsFor('sk-test-responses-xai-0000000001').total.completed === 1, 'the xAI key served');
    // Groq stores nothing, so Keyrack sends no `store` (the mock's echo is OpenAI's default).
    const llama = await client.responses.create({ model: 'llama-3.3-70b', input: 'hi groq' });
    expect((llama as unknown as { store: boolean }).store).toBe(true);
    await waitFor(() => mock.statsFor('sk-test-responses-groq-000000001').total.completed === 1, 'the Groq key served');
    captured.push(JSON.stringify(grok), JSON.stringify(llama));
  });

  it("uses the user's own key first (BYOK)", async () => {
    const gina = await gw.token('gina');
    await gw.trpc(gina).byok.add.mutate({ provider: 'openai', apiKey: BYOK_KEY, label: 'mine' });
    const response = await gw.openai(gina).responses.create({ model: 'gpt-4o', input: 'my own key' });
    expect(response.output_text).toMatch(/^Mock answer to: my own key/);
    await waitFor(() => mock.statsFor(BYOK_KEY).total.completed === 1, "the user's key served");
  });

  it('aborts the upstream call when the client goes away mid-stream', async () => {
    for (const key of KEYS) mock.faults.inject(key, { kind: 'stall', afterChunks: 1 }, { times: 1 });
    const aborted = mock.nextEvent('aborted', { provider: 'openai' });
    const controller = new AbortController();
    const stream = await client.responses.create({ model: 'gpt-4o', input: 'leave early', stream: true }, { signal: controller.signal });
    for await (const event of stream) {
      if (event.type === 'response.output_text.delta') {
        controller.abort();
        break;
      }
    }
    await aborted;
    await waitFor(() => mock.openResponses() === 0, 'the upstream response closed');
    mock.faults.clear();
  });

  it('answers other methods with 405 and a missing token with 401', async () => {
    const get = await fetch(`${gw.url}/v1/responses`, { headers: { authorization: `Bearer ${await gw.token('alice')}` } });
    expect(get.status).toBe(405);
    const anonymous = await fetch(`${gw.url}/v1/responses`, { method: 'POST', body: '{}' });
    expect(anonymous.status).toBe(401);
    captured.push(await get.text(), await anonymous.text());
  });

  it('never shows a secret in anything captured', () => {
    const everything = [...captured, ...logs.lines].join('\n');
    expect(everything.length).toBeGreaterThan(0);
    for (const secret of [...KEYS, BYOK_KEY, 'sk-test-responses-anthropic-000001', 'sk-test-responses-xai-0000000001', 'sk-test-responses-groq-000000001', TEST_JWT_SECRET, ENCRYPTION_KEY]) {
      expect(everything).not.toContain(secret);
    }
  });
});
