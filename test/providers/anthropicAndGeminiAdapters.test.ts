import { adapterEvents } from '../support/adapterEvents';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAdapters } from '../../server/providers/createAdapters';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';
import { ProviderError } from '../../server/providers/ProviderError';
import type { AdapterContext, UpstreamRequest } from '../../server/providers/types';
import { collect, collectUntilError, data, sseResponse } from './support/sseResponse';

const KEY = 'sk-test-ant-0123456789abcdef';
const GKEY = 'AIzaTEST-0123456789abcdefghij';
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

const messages: UpstreamRequest['messages'] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
];

describe('Anthropic adapter', () => {
  const BASE = 'https://anthropic.test';
  const URL = `${BASE}/v1/messages`;
  const ctx = (): AdapterContext => ({ apiKey: KEY, baseUrl: BASE, signal: new AbortController().signal, now: () => NOW });
  const req: UpstreamRequest = { provider: 'anthropic', model: 'claude-test', messages, temperature: 1.5 };
  const ev = (type: string, body: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...body })}\n\n`;

  async function failure(status: number, body: unknown, headers: Record<string, string> = {}) {
    server.use(http.post(URL, () => HttpResponse.json(body as object, { status, headers })));
    const { error } = await collectUntilError(adapterEvents(adapters.anthropic, req, ctx()));
    expect(ProviderError.isInstance(error)).toBe(true);
    return error as ProviderError;
  }

  it("'whole' delivery asks for one Message (stream: false) and yields the same events (text joined, then its tool calls)", async () => {
    let body: any;
    server.use(
      http.post(URL, async ({ request }) => {
        body = await request.json();
        return HttpResponse.json({
          id: 'msg_1',
          type: 'message',
          role: 'assistant',
          content: [{ type: 'text', text: 'Hello' }, { type: 'tool_use', id: 't', name: 'x', input: {} }, { type: 'text', text: '!' }],
          stop_reason: 'max_tokens',
          usage: { input_tokens: 10, cache_read_input_tokens: 5, cache_creation_input_tokens: null, output_tokens: 12 },
        });
      }),
    );
    expect(await collect(adapterEvents(adapters.anthropic, { ...req, delivery: 'whole' }, ctx()))).toEqual([
      { type: 'delta', text: 'Hello!' },
      { type: 'tool_call_delta', index: 0, id: 't', name: 'x', argumentsDelta: '{}' },
      { type: 'usage', usage: { inputTokens: 15, outputTokens: 12, cachedInputTokens: 5, reasoningTokens: 0 } },
      { type: 'done', finishReason: 'length' },
    ]);
    expect(body.stream).toBe(false);
    server.use(http.post(URL, () => new HttpResponse(`{"content": [{"type": "text", "text": "${KEY}`, { headers: { 'content-type': 'application/json' } })));
    const { error } = await collectUntilError(adapterEvents(adapters.anthropic, { ...req, delivery: 'whole' }, ctx()));
    expect(error).toMatchObject({ kind: 'transient' });
    expect((error as Error).message).not.toContain(KEY);
  });

  it('streams text, sums input usage with cache reads, maps stop reasons, sends system separately', async () => {
    let body: any;
    let headers: Headers | undefined;
    server.use(
      http.post(URL, async ({ request }) => {
        body = await request.json();
        headers = request.headers;
        return sseResponse([
          ev('message_start', { message: { id: 'm', usage: { input_tokens: 10, cache_read_input_tokens: 5, output_tokens: 1 } } }),
          ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
          ev('ping', {}),
          ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
          ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: '!' } }),
          ev('content_block_stop', { index: 0 }),
          ev('message_delta', { delta: { stop_reason: 'max_tokens' }, usage: { output_tokens: 12 } }),
          ev('message_stop', {}),
        ]);
      }),
    );
    expect(await collect(adapterEvents(adapters.anthropic, req, ctx()))).toEqual([
      { type: 'delta', text: 'Hello' },
      { type: 'delta', text: '!' },
      { type: 'usage', usage: { inputTokens: 15, outputTokens: 12, cachedInputTokens: 5, reasoningTokens: 0 } },
      { type: 'done', finishReason: 'length' },
    ]);
    expect(headers?.get('x-api-key')).toBe(KEY);
    expect(headers?.get('anthropic-version')).toBe('2023-06-01');
    expect(body).toEqual({ model: 'claude-test', max_tokens: 4096, system: 'Be brief.', messages: [{ role: 'user', content: 'Hi' }], stream: true, temperature: 1 });
  });

  it('classifies Anthropic errors', async () => {
    const err = (type: string, message: string, details?: object) => ({ type: 'error', error: { type, message, ...(details ? { details } : {}) } });
    const rate = await failure(429, err('rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'), {
      'anthropic-ratelimit-requests-remaining': '0',
      'anthropic-ratelimit-requests-reset': new Date(NOW + 20_000).toISOString(),
    });
    expect(rate).toMatchObject({ kind: 'rate_limited', retryAfterMs: 20_000 });
    expect((await failure(429, err('rate_limit_error', 'slow'), { 'retry-after': '3' })).retryAfterMs).toBe(3000);
    expect((await failure(529, err('overloaded_error', 'Overloaded'))).kind).toBe('transient');
    expect((await failure(401, err('authentication_error', 'invalid x-api-key'))).kind).toBe('rejected');
    expect((await failure(403, err('permission_error', 'Your API key does not have permission'))).kind).toBe('rejected');
    expect((await failure(402, err('billing_error', 'Payment required'))).kind).toBe('quota_exhausted');
    expect((await failure(400, err('invalid_request_error', 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.'))).kind).toBe('quota_exhausted');
    expect((await failure(429, err('rate_limit_error', 'spend cap', { error_code: 'enforced_spend_limit_reached' }))).kind).toBe('quota_exhausted');
    expect((await failure(400, err('invalid_request_error', 'max_tokens: must be positive'))).kind).toBe('bad_request');
    expect((await failure(404, err('not_found_error', 'model: claude-9'))).kind).toBe('bad_request');
  });

  it('turns `event: error` inside a 200 stream into a transient overload, and a missing message_stop into truncation', async () => {
    server.use(http.post(URL, () => sseResponse([ev('message_start', { message: { usage: { input_tokens: 1 } } }), ev('error', { error: { type: 'overloaded_error', message: 'Overloaded' } })])));
    expect((await collectUntilError(adapterEvents(adapters.anthropic, req, ctx()))).error).toMatchObject({ kind: 'transient', providerCode: 'overloaded_error' });
    server.use(http.post(URL, () => sseResponse([ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'x' } })])));
    expect((await collectUntilError(adapterEvents(adapters.anthropic, req, ctx()))).error).toMatchObject({ kind: 'transient', providerCode: 'truncated' });
  });

  it('tests keys against /v1/models', async () => {
    server.use(http.get(`${BASE}/v1/models`, ({ request }) => (request.headers.get('x-api-key') === KEY ? HttpResponse.json({ data: [] }) : HttpResponse.json({}, { status: 401 }))));
    expect(await adapters.anthropic.testKey(ctx())).toBe('valid');
    expect(await adapters.anthropic.testKey({ ...ctx(), apiKey: 'sk-test-other' })).toBe('rejected');
  });
});

describe('Gemini adapter', () => {
  const BASE = 'https://gemini.test';
  const URL = `${BASE}/v1beta/models/gemini-test\\:streamGenerateContent`;
  const ctx = (): AdapterContext => ({ apiKey: GKEY, baseUrl: BASE, signal: new AbortController().signal, now: () => NOW });
  const req: UpstreamRequest = { provider: 'google', model: 'gemini-test', messages: [...messages, { role: 'assistant', content: 'Yo' }, { role: 'user', content: 'More' }], maxTokens: 20 };

  async function failure(status: number, body: unknown) {
    server.use(http.post(URL, () => HttpResponse.json(body as object, { status })));
    const { error } = await collectUntilError(adapterEvents(adapters.google, req, ctx()));
    expect(ProviderError.isInstance(error)).toBe(true);
    return error as ProviderError;
  }

  it("'whole' delivery calls generateContent and yields the same events from its one response", async () => {
    let url = '';
    server.use(
      http.post(`${BASE}/v1beta/models/gemini-test\\:generateContent`, ({ request }) => {
        url = request.url;
        return HttpResponse.json({
          candidates: [{ content: { role: 'model', parts: [{ text: 'thinking', thought: true }, { text: 'Hel' }, { text: 'lo' }] }, finishReason: 'STOP' }],
          usageMetadata: { promptTokenCount: 8, candidatesTokenCount: 2, thoughtsTokenCount: 3, totalTokenCount: 13 },
        });
      }),
    );
    expect(await collect(adapterEvents(adapters.google, { ...req, delivery: 'whole' }, ctx()))).toEqual([
      { type: 'reasoning', text: 'thinking' },
      { type: 'delta', text: 'Hel' },
      { type: 'delta', text: 'lo' },
      { type: 'usage', usage: { inputTokens: 8, outputTokens: 5, cachedInputTokens: 0, reasoningTokens: 3 } },
      { type: 'done', finishReason: 'stop' },
    ]);
    expect(url).not.toContain('alt=sse');
    expect(url).not.toContain(GKEY);
  });

  it('streams parts, counts thoughts as output, sends contents/systemInstruction with the key in a header', async () => {
    let body: any;
    let url = '';
    let key: string | null = null;
    server.use(
      http.post(URL, async ({ request }) => {
        body = await request.json();
        url = request.url;
        key = request.headers.get('x-goog-api-key');
        return sseResponse([
          data({ candidates: [{ content: { role: 'model', parts: [{ text: 'thinking', thought: true }, { text: 'Hel' }] } }] }),
          data({ candidates: [{ content: { role: 'model', parts: [{ text: 'lo' }] }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 8, candidatesTokenCount: 2, thoughtsTokenCount: 3, totalTokenCount: 13 } }),
        ]);
      }),
    );
    expect(await collect(adapterEvents(adapters.google, req, ctx()))).toEqual([
      { type: 'reasoning', text: 'thinking' },
      { type: 'delta', text: 'Hel' },
      { type: 'delta', text: 'lo' },
      { type: 'usage', usage: { inputTokens: 8, outputTokens: 5, cachedInputTokens: 0, reasoningTokens: 3 } },
      { type: 'done', finishReason: 'stop' },
    ]);
    expect(url).toContain('alt=sse');
    expect(url).not.toContain(GKEY);
    expect(key).toBe(GKEY);
    expect(body).toEqual({
      contents: [
        { role: 'user', parts: [{ text: 'Hi' }] },
        { role: 'model', parts: [{ text: 'Yo' }] },
        { role: 'user', parts: [{ text: 'More' }] },
      ],
      systemInstruction: { parts: [{ text: 'Be brief.' }] },
      generationConfig: { maxOutputTokens: 20 },
    });
  });

  it('classifies Gemini errors', async () => {
    const status = (code: number, s: string, message: string, details: object[] = []) => ({ error: { code, message, status: s, details } });
    const invalid = await failure(400, status(400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' }]));
    expect(invalid).toMatchObject({ kind: 'rejected', providerCode: 'API_KEY_INVALID' });
    const perMinute = await failure(429, status(429, 'RESOURCE_EXHAUSTED', 'You exceeded your current quota', [
      { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests', quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier' }] },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '7s' },
    ]));
    expect(perMinute).toMatchObject({ kind: 'rate_limited', retryAfterMs: 7000 });
    const perDay = await failure(429, status(429, 'RESOURCE_EXHAUSTED', 'You exceeded your current quota', [
      { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaId: 'GenerateRequestsPerDayPerProjectPerModel-FreeTier' }] },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '38s' },
    ]));
    expect(perDay.kind).toBe('quota_exhausted');
    expect((await failure(403, status(403, 'PERMISSION_DENIED', 'Your API key was reported as leaked.'))).kind).toBe('rejected');
    expect((await failure(503, status(503, 'UNAVAILABLE', 'The model is overloaded.'))).kind).toBe('transient');
    expect((await failure(404, status(404, 'NOT_FOUND', 'models/gemini-9 is not found'))).kind).toBe('bad_request');
  });

  it('maps safety blocks to content_filter and a stream without a finish reason to truncation', async () => {
    server.use(http.post(URL, () => sseResponse([data({ promptFeedback: { blockReason: 'SAFETY' }, usageMetadata: { promptTokenCount: 3 } })])));
    expect((await collect(adapterEvents(adapters.google, req, ctx()))).at(-1)).toEqual({ type: 'done', finishReason: 'content_filter' });
    server.use(http.post(URL, () => sseResponse([data({ candidates: [{ content: { parts: [{ text: 'a' }] } }] })])));
    expect((await collectUntilError(adapterEvents(adapters.google, req, ctx()))).error).toMatchObject({ kind: 'transient', providerCode: 'truncated' });
  });
});
