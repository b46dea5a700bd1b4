import Anthropic from '@anthropic-ai/sdk';
import { ApiError, GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';

/** The official SDKs, pointed at the mock, work unchanged: the mock speaks their wire formats. */

const OPENAI_KEY = 'sk-test-openai-000000000001';
const ANTHROPIC_KEY = 'sk-test-ant-000000000000001';
const GEMINI_KEY = 'AIza-test-gemini-0000000001';

let mock: MockProvider;
let now = Date.parse('2026-01-01T00:00:00Z');

beforeAll(async () => {
  mock = await startMockProvider({ clock: () => now });
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

describe('openai SDK', () => {
  const client = () => new OpenAI({ apiKey: OPENAI_KEY, baseURL: mock.baseUrls.openai, maxRetries: 0 });

  it('answers a chat completion deterministically, with usage', async () => {
    const completion = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }] });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]?.message.content).toMatch(/^Mock answer to: hello there/);
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);
    expect(completion.usage?.total_tokens).toBe((completion.usage?.prompt_tokens ?? 0) + (completion.usage?.completion_tokens ?? 0));
  });

  it('streams word by word and sends usage in a last chunk with empty choices', async () => {
    const stream = await client().chat.completions.create({
      model: 'gpt-4o-mini-mock-chunks-25',
      messages: [{ role: 'user', content: 'stream please' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let deltas = 0;
    const chunks = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      const content = chunk.choices[0]?.delta.content;
      if (content) {
        text += content;
        deltas += 1;
      }
    }
    expect(deltas).toBe(25);
    expect(text).toMatch(/^Mock answer to: stream please/);
    const last = chunks[chunks.length - 1];
    expect(last?.choices).toEqual([]);
    expect(last?.usage?.completion_tokens).toBe(25);
    expect(chunks[chunks.length - 2]?.choices[0]?.finish_reason).toBe('stop');
  });

  it('honours max_completion_tokens with finish_reason length', async () => {
    const completion = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 2 });
    expect(completion.choices[0]?.message.content).toBe('Mock answer');
    expect(completion.choices[0]?.finish_reason).toBe('length');
  });

  it('lists models', async () => {
    const ids: string[] = [];
    for await (const model of client().models.list()) ids.push(model.id);
    expect(ids).toContain('gpt-4o-mini');
  });

  it('surfaces the RPM limit as RateLimitError with readable rate-limit headers', async () => {
    mock.configure({ rpmPerKey: 1 });
    await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'one' }] });
    const error = await caught(client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'two' }] }));
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    const e = error as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.status).toBe(429);
    expect(e.code).toBe('rate_limit_exceeded');
    expect(e.headers.get('retry-after')).toBe('60');
    expect(e.headers.get('x-ratelimit-limit-requests')).toBe('1');
    expect(e.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(e.headers.get('x-ratelimit-reset-requests')).toBe('1m0s');
    expect(mock.statsFor(OPENAI_KEY).byProvider.openai?.rateLimited).toBe(1);
    now += 60_000;
    await expect(client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'three' }] })).resolves.toBeTruthy();
  });

  it('surfaces insufficient_quota and invalid_api_key faults as the SDK errors', async () => {
    mock.faults.inject(OPENAI_KEY, { kind: 'quota' });
    const quota = await caught(client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }));
    expect(quota).toBeInstanceOf(OpenAI.RateLimitError);
    expect((quota as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('insufficient_quota');

    mock.faults.inject(OPENAI_KEY, { kind: 'reject' });
    const rejected = await caught(client().models.list());
    expect(rejected).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((rejected as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
    expect(String((rejected as Error).message)).not.toContain(OPENAI_KEY);
  });

  it('throws APIError for an error object inside a 200 stream', async () => {
    mock.faults.inject(OPENAI_KEY, { kind: 'streamError', afterChunks: 2, error: 'serverError' });
    const stream = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true });
    let deltas = 0;
    const error = await caught(
      (async () => {
        for await (const chunk of stream) if (chunk.choices[0]?.delta.content) deltas += 1;
      })(),
    );
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).type).toBe('server_error');
    expect(deltas).toBe(2);
  });
});

describe('anthropic SDK', () => {
  const client = () => new Anthropic({ apiKey: ANTHROPIC_KEY, baseURL: mock.baseUrls.anthropic, maxRetries: 0 });

  it('answers messages.create with content and usage', async () => {
    const message = await client().messages.create({ model: 'claude-haiku-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'hi claude' }] });
    expect(message.type).toBe('message');
    const block = message.content[0];
    expect(block?.type === 'text' ? block.text : '').toMatch(/^Mock answer to: hi claude/);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage.output_tokens).toBeGreaterThan(0);
  });

  it('streams with messages.stream: text deltas, cumulative usage, stop reason', async () => {
    const stream = client().messages.stream({ model: 'claude-haiku-4-5-mock-chunks-30', max_tokens: 1000, messages: [{ role: 'user', content: 'stream' }] });
    let deltas = 0;
    stream.on('text', () => (deltas += 1));
    const final = await stream.finalMessage();
    expect(deltas).toBe(30);
    const block = final.content[0];
    expect(block?.type === 'text' ? block.text : '').toMatch(/^Mock answer to: stream/);
    expect(final.usage.output_tokens).toBe(30);
    expect(final.stop_reason).toBe('end_turn');
  });

  it('stops at max_tokens with stop_reason max_tokens', async () => {
    const message = await client().messages.create({ model: 'claude-haiku-4-5', max_tokens: 3, messages: [{ role: 'user', content: 'long' }] });
    expect(message.stop_reason).toBe('max_tokens');
    expect(message.usage.output_tokens).toBe(3);
  });

  it('lists models', async () => {
    const page = await client().models.list();
    expect(page.data.map((m) => m.id)).toContain('claude-haiku-4-5');
  });

  it('surfaces the RPM limit as RateLimitError with anthropic-ratelimit headers (RFC 3339 reset)', async () => {
    mock.configure({ rpmPerKey: 1 });
    await client().messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'one' }] });
    now += 15_000;
    const error = await caught(client().messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'two' }] }));
    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    const e = error as InstanceType<typeof Anthropic.RateLimitError>;
    expect(e.status).toBe(429);
    expect(e.headers?.get('retry-after')).toBe('45');
    expect(e.headers?.get('anthropic-ratelimit-requests-remaining')).toBe('0');
    expect(Date.parse(e.headers?.get('anthropic-ratelimit-requests-reset') ?? '')).toBe(now + 45_000);
    expect((e.error as { error?: { type?: string } }).error?.type).toBe('rate_limit_error');
  });

  it('answers 529 overloaded_error and an error event inside a stream', async () => {
    mock.faults.inject(ANTHROPIC_KEY, { kind: 'overloaded' });
    const overloaded = await caught(client().messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }));
    expect(overloaded).toBeInstanceOf(Anthropic.InternalServerError);
    expect((overloaded as InstanceType<typeof Anthropic.APIError>).status).toBe(529);

    mock.faults.inject(ANTHROPIC_KEY, { kind: 'streamError', afterChunks: 1 });
    const streamed = await caught(client().messages.stream({ model: 'claude-haiku-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'x' }] }).finalMessage());
    expect(streamed).toBeInstanceOf(Anthropic.APIError);
    expect((streamed as InstanceType<typeof Anthropic.APIError>).type).toBe('overloaded_error');
  });

  it('rejects a key with 401 authentication_error', async () => {
    mock.faults.inject(ANTHROPIC_KEY, { kind: 'reject' });
    const error = await caught(client().models.list());
    expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
  });
});

describe('@google/genai SDK', () => {
  const client = (apiKey = GEMINI_KEY) => new GoogleGenAI({ apiKey, httpOptions: { baseUrl: mock.baseUrls.gemini } });

  it('answers generateContent with text, finishReason and usageMetadata', async () => {
    const response = await client().models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello gemini' });
    expect(response.text).toMatch(/^Mock answer to: hello gemini/);
    expect(response.candidates?.[0]?.finishReason).toBe('STOP');
    const usage = response.usageMetadata;
    expect(usage?.totalTokenCount).toBe((usage?.promptTokenCount ?? 0) + (usage?.candidatesTokenCount ?? 0));
  });

  it('streams with generateContentStream: cumulative usage, finishReason on the last chunk', async () => {
    const stream = await client().models.generateContentStream({ model: 'gemini-2.5-flash-mock-chunks-12', contents: 'stream gemini' });
    let text = '';
    const counts: number[] = [];
    let finish: string | undefined;
    for await (const chunk of stream) {
      text += chunk.text ?? '';
      counts.push(chunk.usageMetadata?.candidatesTokenCount ?? -1);
      finish = chunk.candidates?.[0]?.finishReason ?? finish;
    }
    expect(text).toMatch(/^Mock answer to: stream gemini/);
    expect(counts.slice(0, 12)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(counts[counts.length - 1]).toBe(12);
    expect(finish).toBe('STOP');
  });

  it('lists models', async () => {
    const pager = await client().models.list();
    const names: string[] = [];
    for await (const model of pager) names.push(model.name ?? '');
    expect(names).toContain('models/gemini-2.5-flash');
  });

  it('surfaces a 429 RESOURCE_EXHAUSTED with RetryInfo as ApiError status 429', async () => {
    mock.faults.inject(GEMINI_KEY, { kind: 'rateLimit', retryAfterSeconds: 7 });
    const error = await caught(client().models.generateContent({ model: 'gemini-2.5-flash', contents: 'x' }));
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(429);
    // The SDK keeps the body as the message: the RetryInfo is readable there (it exposes no headers).
    const body = JSON.parse((error as ApiError).message) as { error: { status: string; details: { '@type': string; retryDelay?: string }[] } };
    expect(body.error.status).toBe('RESOURCE_EXHAUSTED');
    expect(body.error.details.find((d) => d['@type'] === 'type.googleapis.com/google.rpc.RetryInfo')?.retryDelay).toBe('7s');
  });

  it('answers a bad key with 400 INVALID_ARGUMENT / API_KEY_INVALID', async () => {
    mock.faults.inject(GEMINI_KEY, { kind: 'reject' });
    const error = await caught(client().models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'x' }));
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).message).toContain('API_KEY_INVALID');
  });
});
