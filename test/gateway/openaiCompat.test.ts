import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/** The /v1 endpoint through the official openai package, as existing OpenAI clients call it. */

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway({
    // One request per key per minute: the third request finds every OpenAI key busy.
    env: { OPENAI_RPM_PER_KEY: '1' },
    models: [
      testModel('gpt-4o', 'openai'),
      testModel('claude-sonnet-4', 'anthropic', { upstream_model: 'claude-sonnet-4-20250514' }),
      testModel('gemini-2.5-flash', 'google'),
    ],
  });
  client = gw.openai(await gw.token('alice'));
});
afterAll(() => gw?.close());

describe('OpenAI-compatible /v1', () => {
  it('answers non-streaming chat completions in OpenAI shape', async () => {
    const completion = await client.chat.completions.create({
      model: 'anthropic/claude-sonnet-4',
      messages: [{ role: 'user', content: 'plain answer' }],
      // An end-user id is accepted (and not forwarded); an unknown field is a 400 (test/gateway/v1RequestSurface.test.ts).
      user: 'end-user-7',
    });
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('claude-sonnet-4');
    expect(completion.choices[0]?.message.content).toMatch(/^Mock answer to: plain answer/);
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('streams chunks, with usage in a last chunk when include_usage is set', async () => {
    const stream = await client.chat.completions.create({
      model: 'gemini-2.5-flash',
      messages: [{ role: 'user', content: 'stream this' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toMatch(/^Mock answer to: stream this/);
    expect(finish).toBe('stop');
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));
  });

  it('writes each streamed chunk as JSON.stringify would, escapes and all', async () => {
    const prompt = 'escapes: "quoted" \\ back\nslash é 😀 \u0001';
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await gw.token('alice')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: prompt }], stream: true }),
    });
    const payloads = (await res.text()).split('\n\n').filter((frame) => frame.startsWith('data: ') && frame !== 'data: [DONE]').map((frame) => frame.slice(6));
    let text = '';
    for (const payload of payloads) {
      // Text chunks are assembled from a prefix, the stringified text and a suffix (issue #8).
      expect(JSON.stringify(JSON.parse(payload))).toBe(payload);
      text += (JSON.parse(payload) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '';
    }
    expect(payloads.length).toBeGreaterThan(3);
    // The mock echoes the prompt's words (whitespace its own).
    for (const piece of ['"quoted"', '\\', 'é', '😀', '\u0001']) expect(text).toContain(piece);
  });

  it('lists models', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    expect(models.sort()).toEqual(['claude-sonnet-4', 'gemini-2.5-flash', 'gpt-4o']);
  });

  it('refuses bad input with a 400 OpenAI error body', async () => {
    const error = await client.chat.completions.create({ model: 'gpt-4o', messages: [] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ type: 'invalid_request_error', param: 'messages' });
  });

  it('an unknown model is 404 model_not_found', async () => {
    const error = await client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it('refuses a bad API key (JWT) with 401', async () => {
    const error = await gw.openai('not-a-jwt').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('every key busy: 429 with retry-after, streaming or not (no 200 stream carrying an error)', async () => {
    const ask = (stream: boolean) =>
      client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'busy?' }], stream }).then(async (r) => {
        if (stream) for await (const _ of r as AsyncIterable<unknown>) void _;
      });
    // Two keys at one request a minute each (the first test used none of them: it went to anthropic).
    await ask(false);
    await ask(false);
    for (const stream of [false, true]) {
      const error = await ask(stream).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      const e = error as InstanceType<typeof OpenAI.RateLimitError>;
      expect(e.status).toBe(429);
      expect(Number(e.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(e.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limited' });
    }
  });
});
