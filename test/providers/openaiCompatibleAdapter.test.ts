import { adapterEvents } from '../support/adapterEvents';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAdapters } from '../../server/providers/createAdapters';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';
import { ProviderError } from '../../server/providers/ProviderError';
import type { AdapterContext, UpstreamRequest } from '../../server/providers/types';
import { collect, collectUntilError, data, sseResponse } from './support/sseResponse';

const BASE = 'https://openai.test/v1';
const KEY = 'sk-test-openai-0123456789abcdef';
const server = setupServer();
const upstream = new UpstreamHttp();
const adapters = createAdapters(upstream);
const NOW = Date.parse('2025-01-01T00:00:00Z');

beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(async () => {
  server.close();
  await upstream.close();
});

const req: UpstreamRequest = { provider: 'openai', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], maxTokens: 50, temperature: 0.2 };
const ctx = (): AdapterContext => ({ apiKey: KEY, baseUrl: BASE, signal: new AbortController().signal, now: () => NOW });

const chunk = (content: string | null, finish: string | null = null) => ({
  id: 'c1',
  object: 'chat.completion.chunk',
  choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
});

async function failure(status: number, body: unknown, headers: Record<string, string> = {}, provider: UpstreamRequest['provider'] = 'openai') {
  server.use(http.post(`${BASE}/chat/completions`, () => HttpResponse.json(body as object, { status, headers })));
  const { error } = await collectUntilError(adapterEvents(adapters[provider], { ...req, provider }, ctx()));
  expect(ProviderError.isInstance(error)).toBe(true);
  return error as ProviderError;
}

describe('OpenAI-compatible adapter', () => {
  it('streams deltas, usage from the final chunk, and the finish reason; sends the request OpenAI expects', async () => {
    let seen: { body: any; auth: string | null } | undefined;
    server.use(
      http.post(`${BASE}/chat/completions`, async ({ request }) => {
        seen = { body: await request.json(), auth: request.headers.get('authorization') };
        return sseResponse([
          ': keep-alive\n\n',
          data(chunk('Hel')),
          data(chunk('lo')),
          data(chunk(null, 'stop')),
          data({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 1 } } }),
          'data: [DONE]\n\n',
        ]);
      }),
    );
    const events = await collect(adapterEvents(adapters.openai, req, ctx()));
    expect(events).toEqual([
      { type: 'delta', text: 'Hel' },
      { type: 'delta', text: 'lo' },
      { type: 'usage', usage: { inputTokens: 9, outputTokens: 2, cachedInputTokens: 4, reasoningTokens: 1 } },
      { type: 'done', finishReason: 'stop' },
    ]);
    expect(seen?.auth).toBe(`Bearer ${KEY}`);
    expect(seen?.body).toEqual({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
      stream_options: { include_usage: true },
      max_completion_tokens: 50,
      temperature: 0.2,
    });
  });

  it('reads Groq usage from x_groq and Kimi usage from the choice; Mistral gets no stream_options', async () => {
    let mistralBody: any;
    server.use(
      http.post(`${BASE}/chat/completions`, async ({ request }) => {
        const body: any = await request.json();
        if (body.model === 'groq-model') {
          return sseResponse([data(chunk('a', 'stop')), data({ choices: [], x_groq: { usage: { prompt_tokens: 3, completion_tokens: 1 } } }), data('[DONE]')]);
        }
        if (body.model === 'kimi-model') {
          return sseResponse([data({ choices: [{ index: 0, delta: { content: 'b' }, finish_reason: 'length', usage: { prompt_tokens: 5, completion_tokens: 7, cached_tokens: 2 } }] }), data('[DONE]')]);
        }
        mistralBody = body;
        return sseResponse([data({ ...chunk('c', 'stop'), usage: { prompt_tokens: 1, completion_tokens: 1 } }), data('[DONE]')]);
      }),
    );
    const groq = await collect(adapterEvents(adapters.groq, { ...req, provider: 'groq', model: 'groq-model' }, ctx()));
    expect(groq).toContainEqual({ type: 'usage', usage: { inputTokens: 3, outputTokens: 1, cachedInputTokens: 0, reasoningTokens: 0 } });
    const kimi = await collect(adapterEvents(adapters.kimi, { ...req, provider: 'kimi', model: 'kimi-model' }, ctx()));
    expect(kimi.slice(-2)).toEqual([
      { type: 'usage', usage: { inputTokens: 5, outputTokens: 7, cachedInputTokens: 2, reasoningTokens: 0 } },
      { type: 'done', finishReason: 'length' },
    ]);
    await collect(adapterEvents(adapters.mistral, { ...req, provider: 'mistral', model: 'mistral-small' }, ctx()));
    expect(mistralBody.stream_options).toBeUndefined();
    expect(mistralBody.max_tokens).toBe(50);
  });

  it("'whole' delivery asks for one JSON answer (stream: false) and yields the same events", async () => {
    const bodies: any[] = [];
    server.use(
      http.post(`${BASE}/chat/completions`, async ({ request }) => {
        const body: any = await request.json();
        bodies.push({ body, accept: request.headers.get('accept') });
        if (body.model === 'kimi-model') {
          // Kimi puts usage in the choice.
          return HttpResponse.json({ choices: [{ index: 0, message: { role: 'assistant', content: 'b' }, finish_reason: 'length', usage: { prompt_tokens: 5, completion_tokens: 7, cached_tokens: 2 } }] });
        }
        return HttpResponse.json({
          id: 'chatcmpl-1',
          object: 'chat.completion',
          choices: [{ index: 0, message: { role: 'assistant', content: 'Hello', refusal: null }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, prompt_tokens_details: { cached_tokens: 4 } },
        });
      }),
    );
    const whole = { ...req, delivery: 'whole' as const };
    expect(await collect(adapterEvents(adapters.openai, whole, ctx()))).toEqual([
      { type: 'delta', text: 'Hello' },
      { type: 'usage', usage: { inputTokens: 9, outputTokens: 2, cachedInputTokens: 4, reasoningTokens: 0 } },
      { type: 'done', finishReason: 'stop' },
    ]);
    expect(bodies[0]).toEqual({
      accept: 'application/json',
      body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: false, max_completion_tokens: 50, temperature: 0.2 },
    });
    expect(await collect(adapterEvents(adapters.kimi, { ...whole, provider: 'kimi', model: 'kimi-model' }, ctx()))).toEqual([
      { type: 'delta', text: 'b' },
      { type: 'usage', usage: { inputTokens: 5, outputTokens: 7, cachedInputTokens: 2, reasoningTokens: 0 } },
      { type: 'done', finishReason: 'length' },
    ]);
  });

  it("'whole' delivery: an error in a 200 body is classified, an unreadable or oversized body is transient, never echoing the key", async () => {
    const whole = { ...req, delivery: 'whole' as const };
    server.use(http.post(`${BASE}/chat/completions`, () => HttpResponse.json({ error: { message: `Incorrect API key provided: ${KEY}`, type: 'invalid_request_error', code: 'invalid_api_key' } })));
    const rejected = (await collectUntilError(adapterEvents(adapters.openai, whole, ctx()))).error as ProviderError;
    expect(rejected.kind).toBe('rejected');
    expect(rejected.message).not.toContain(KEY);
    server.use(http.post(`${BASE}/chat/completions`, () => new HttpResponse(`{"choices": [{"message": {"content": "${KEY}`, { headers: { 'content-type': 'application/json' } })));
    const unreadable = (await collectUntilError(adapterEvents(adapters.openai, whole, ctx()))).error as ProviderError;
    expect(unreadable.kind).toBe('transient');
    expect(unreadable.message).not.toContain(KEY);
    const { readAnswerBody } = await import('../../server/providers/http/UpstreamHttp');
    await expect(readAnswerBody(new Response('x'.repeat(2048)), KEY, 1024)).rejects.toMatchObject({ kind: 'transient', providerCode: 'answer_too_large' });
    // A 429 is classified the same way whatever the delivery.
    server.use(http.post(`${BASE}/chat/completions`, () => HttpResponse.json({ error: { message: 'slow down', type: 'requests', code: 'rate_limit_exceeded' } }, { status: 429, headers: { 'retry-after': '2' } })));
    const limited = (await collectUntilError(adapterEvents(adapters.openai, whole, ctx()))).error as ProviderError;
    expect(limited).toMatchObject({ kind: 'rate_limited', retryAfterMs: 2000 });
  });

  it('classifies 429 with retry-after seconds as rate_limited', async () => {
    const error = await failure(429, { error: { message: 'Rate limit reached for gpt-4o-mini', type: 'requests', code: 'rate_limit_exceeded' } }, { 'retry-after': '7' });
    expect(error).toMatchObject({ kind: 'rate_limited', status: 429, retryAfterMs: 7000, providerCode: 'rate_limit_exceeded' });
  });

  it('reads retry-after as an HTTP date, and retry-after-ms first', async () => {
    const date = new Date(NOW + 12_000).toUTCString();
    expect((await failure(429, { error: { message: 'slow down' } }, { 'retry-after': date })).retryAfterMs).toBe(12_000);
    expect((await failure(429, { error: { message: 'slow down' } }, { 'retry-after': '9', 'retry-after-ms': '250' })).retryAfterMs).toBe(250);
  });

  it('reads the reset of the exhausted x-ratelimit window (Go durations)', async () => {
    const error = await failure(
      429,
      { error: { message: 'Rate limit reached', code: 'rate_limit_exceeded' } },
      { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1m30.5s', 'x-ratelimit-remaining-tokens': '900', 'x-ratelimit-reset-tokens': '6m0s' },
    );
    expect(error).toMatchObject({ kind: 'rate_limited', retryAfterMs: 90_500 });
  });

  it('classifies insufficient_quota (a 429) and billing codes as quota_exhausted', async () => {
    const quota = await failure(429, { error: { message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' } });
    expect(quota.kind).toBe('quota_exhausted');
    const billing = await failure(429, { error: { message: 'Billing hard limit has been reached', type: 'invalid_request_error', code: 'billing_hard_limit_reached' } });
    expect(billing.kind).toBe('quota_exhausted');
  });

  it('classifies DeepSeek 402 and Kimi 403 over quota as quota_exhausted', async () => {
    expect((await failure(402, { error: { message: 'Insufficient Balance', type: 'unknown_error' } }, {}, 'deepseek')).kind).toBe('quota_exhausted');
    const kimi = await failure(403, { error: { message: 'Your account org-x is suspended, please check your plan and billing details', type: 'exceeded_current_quota_error' } }, {}, 'kimi');
    expect(kimi.kind).toBe('quota_exhausted');
  });

  it('classifies 401 invalid_api_key and xAI 400 "Incorrect API key" as rejected, never echoing the key', async () => {
    const error = await failure(401, { error: { message: `Incorrect API key provided: ${KEY.slice(0, 8)}****${KEY.slice(-4)}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: 'invalid_request_error', code: 'invalid_api_key' } });
    expect(error.kind).toBe('rejected');
    expect(error.message).not.toContain(KEY.slice(-4) + '.');
    expect(error.message).not.toContain(KEY.slice(0, 8));
    const xai = await failure(400, { code: 'Client specified an invalid argument', error: `Incorrect API key provided: ${KEY}. You can obtain an API key from https://console.x.ai.` }, {}, 'xai');
    expect(xai.kind).toBe('rejected');
    expect(xai.message).not.toContain(KEY);
    // The same 400 from OpenAI is a bad request: only xAI answers a bad key that way.
    expect((await failure(400, { error: { message: 'Invalid value for temperature', type: 'invalid_request_error' } })).kind).toBe('bad_request');
  });

  it('classifies 5xx as transient and 404 model_not_found as bad_request', async () => {
    expect((await failure(503, { error: { message: 'The server is overloaded', type: 'server_error' } })).kind).toBe('transient');
    expect((await failure(404, { error: { message: 'The model `gpt-9` does not exist', code: 'model_not_found' } })).kind).toBe('bad_request');
  });

  it('turns an error inside a 200 stream into a classified error after the text so far', async () => {
    server.use(http.post(`${BASE}/chat/completions`, () => sseResponse([data(chunk('partial')), data({ error: { message: 'Rate limit exceeded', type: 'rate_limit_exceeded' } })])));
    const { events, error } = await collectUntilError(adapterEvents(adapters.openai, req, ctx()));
    expect(events).toEqual([{ type: 'delta', text: 'partial' }]);
    expect(error).toMatchObject({ kind: 'rate_limited' });
  });

  it('reads plain delta chunks without the schema, and still refuses chunks of the wrong shape', async () => {
    // Two choices and a null delta take the schema path; both paths agree on the text.
    const two = { choices: [{ delta: { content: 'a' } }, { delta: { content: 'b' } }] };
    server.use(http.post(`${BASE}/chat/completions`, () => sseResponse([data(chunk('x')), data({ choices: [{ delta: null, finish_reason: null }] }), data(two), data(chunk(null, 'length')), 'data: [DONE]\n\n'])));
    expect(await collect(adapterEvents(adapters.openai, req, ctx()))).toEqual([
      { type: 'delta', text: 'x' },
      { type: 'delta', text: 'a' },
      { type: 'delta', text: 'b' },
      { type: 'done', finishReason: 'length' },
    ]);
    for (const bad of [{ choices: [{ delta: { content: 5 } }] }, { choices: [{ delta: 'text' }] }, { choices: [{ finish_reason: 1 }] }, { choices: 'x' }, [1]]) {
      server.use(http.post(`${BASE}/chat/completions`, () => sseResponse([data(bad)])));
      const { error } = await collectUntilError(adapterEvents(adapters.openai, req, ctx()));
      expect(error).toMatchObject({ kind: 'transient' });
      expect((error as Error).message).toMatch(/unreadable stream chunk \(unexpected shape/);
    }
    server.use(http.post(`${BASE}/chat/completions`, () => sseResponse(['data: {nope\n\n'])));
    const notJson = await collectUntilError(adapterEvents(adapters.openai, req, ctx()));
    expect((notJson.error as Error).message).toMatch(/unreadable stream chunk \(not JSON\)/);
  });

  it('treats a stream cut mid-way, or ending without [DONE], as transient (never a silent end)', async () => {
    server.use(http.post(`${BASE}/chat/completions`, () => sseResponse([data(chunk('partial'))], { cut: true })));
    const cut = await collectUntilError(adapterEvents(adapters.openai, req, ctx()));
    // (msw may drop frames queued before the cut; the real-HTTP cut is tested in test/dispatch.)
    expect(cut.error).toMatchObject({ kind: 'transient' });

    server.use(http.post(`${BASE}/chat/completions`, () => sseResponse([data(chunk('partial'))])));
    const ended = await collectUntilError(adapterEvents(adapters.openai, req, ctx()));
    expect(ended.error).toMatchObject({ kind: 'transient', providerCode: 'truncated' });
  });

  it('tests keys: 200 valid, 401 rejected; Perplexity by an empty POST', async () => {
    server.use(
      http.get(`${BASE}/models`, ({ request }) =>
        request.headers.get('authorization') === `Bearer ${KEY}` ? HttpResponse.json({ data: [] }) : HttpResponse.json({ error: { code: 'invalid_api_key' } }, { status: 401 }),
      ),
      http.post('https://pplx.test/chat/completions', ({ request }) =>
        request.headers.get('authorization') === `Bearer ${KEY}` ? HttpResponse.json({ error: { message: 'messages empty' } }, { status: 400 }) : new HttpResponse('unauthorized', { status: 401 }),
      ),
    );
    expect(await adapters.openai.testKey(ctx())).toBe('valid');
    expect(await adapters.openai.testKey({ ...ctx(), apiKey: 'sk-test-wrong' })).toBe('rejected');
    expect(await adapters.perplexity.testKey({ ...ctx(), baseUrl: 'https://pplx.test' })).toBe('valid');
    expect(await adapters.perplexity.testKey({ ...ctx(), baseUrl: 'https://pplx.test', apiKey: 'sk-test-wrong' })).toBe('rejected');
    server.use(http.get(`${BASE}/models`, () => HttpResponse.error()));
    expect(await adapters.openai.testKey(ctx())).toBe('unreachable');
  });

  it('reports a network failure as transient with no key in the message', async () => {
    server.use(http.post(`${BASE}/chat/completions`, () => HttpResponse.error()));
    const { error } = await collectUntilError(adapterEvents(adapters.openai, req, ctx()));
    expect(error).toMatchObject({ kind: 'transient' });
    expect(String((error as Error).message)).not.toContain(KEY);
  });
});
