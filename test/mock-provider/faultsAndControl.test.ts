import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fingerprintOf } from '../../server/pool/keyIdentity';
import { classifyAnthropicError } from '../../server/providers/anthropic/classifyAnthropicError';
import { classifyGeminiError } from '../../server/providers/gemini/classifyGeminiError';
import { classifyOpenAIError } from '../../server/providers/openai-compatible/classifyOpenAIError';
import { PROVIDER_SPECS } from '../../server/providers/registry';
import type { MockFault, MockProviderName } from '../../server/mock-provider/mockFault';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';

/** Faults, counters, the control API and the raw wire, over real loopback HTTP. */

const KEY = 'sk-test-faults-00000000000a';
let mock: MockProvider;
let now = Date.parse('2026-03-01T12:00:00Z');

beforeAll(async () => {
  mock = await startMockProvider({ clock: () => now, acceptKey: (key) => !key.includes('revoked') });
});
afterAll(() => mock.close());
beforeEach(() => {
  mock.reset();
  mock.configure({ rpmPerKey: null, chunkDelayMs: 0 });
});

type Call = { url: string; init: RequestInit };

/** A streaming chat request in each provider's own shape. */
function chatCall(provider: MockProviderName, key: string, opts: { stream?: boolean; model?: string; headers?: Record<string, string> } = {}): Call {
  const stream = opts.stream ?? true;
  const headers = { 'content-type': 'application/json', ...opts.headers };
  switch (provider) {
    case 'openai':
      return {
        url: `${mock.baseUrls.openai}/chat/completions`,
        init: { method: 'POST', headers: { ...headers, authorization: `Bearer ${key}` }, body: JSON.stringify({ model: opts.model ?? 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'ping' }] }) },
      };
    case 'anthropic':
      return {
        url: `${mock.baseUrls.anthropic}/v1/messages`,
        init: {
          method: 'POST',
          headers: { ...headers, 'x-api-key': key, 'anthropic-version': '2023-06-01' },
          body: JSON.stringify({ model: opts.model ?? 'claude-haiku-4-5', max_tokens: 100, stream, messages: [{ role: 'user', content: 'ping' }] }),
        },
      };
    case 'gemini':
      return {
        url: `${mock.baseUrls.gemini}/v1beta/models/${opts.model ?? 'gemini-2.5-flash'}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`,
        init: { method: 'POST', headers: { ...headers, 'x-goog-api-key': key }, body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'ping' }] }] }) },
      };
  }
}

async function call(c: Call, signal?: AbortSignal): Promise<Response> {
  return fetch(c.url, { ...c.init, ...(signal ? { signal } : {}) });
}

/** Reads SSE messages until the body ends or fails; returns what arrived and how it ended. */
async function readSse(response: Response, onMessage?: (m: EventSourceMessage) => void): Promise<{ messages: EventSourceMessage[]; error?: unknown }> {
  const messages: EventSourceMessage[] = [];
  const parser = createParser({
    onEvent: (m) => {
      messages.push(m);
      onMessage?.(m);
    },
  });
  const decoder = new TextDecoder();
  try {
    for await (const part of response.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(part, { stream: true }));
    return { messages };
  } catch (error) {
    return { messages, error };
  }
}

const PROVIDERS: MockProviderName[] = ['openai', 'anthropic', 'gemini'];

describe('stream faults', () => {
  it.each(PROVIDERS)('%s: cutStream destroys the socket after N deltas', async (provider) => {
    mock.faults.inject(KEY, { kind: 'cutStream', afterChunks: 3 });
    const cut = mock.nextEvent('cut', { key: KEY });
    const response = await call(chatCall(provider, KEY));
    expect(response.status).toBe(200);
    const { messages, error } = await readSse(response);
    expect(error).toBeDefined();
    // Everything before the first delta (OpenAI's role chunk; Anthropic's start events and ping), then 3 deltas.
    const framing = { openai: 1, anthropic: 3, gemini: 0 }[provider];
    expect(messages).toHaveLength(framing + 3);
    await cut;
    expect(mock.statsFor(KEY).byProvider[provider]?.cut).toBe(1);
    expect(mock.statsFor(KEY).total.aborted).toBe(0);
  });

  it.each(PROVIDERS)('%s: a client abort mid-stream reaches the mock', async (provider) => {
    mock.faults.inject(KEY, { kind: 'stall', afterChunks: 2 });
    const aborted = mock.nextEvent('aborted', { key: KEY, provider });
    const controller = new AbortController();
    const response = await call(chatCall(provider, KEY), controller.signal);
    let seen = 0;
    const reading = readSse(response, (m) => {
      if (m.event !== 'ping' && m.event !== 'message_start' && m.event !== 'content_block_start' && !m.data.includes('"role":"assistant","content":""')) seen += 1;
      if (seen === 2) controller.abort();
    });
    await reading;
    await aborted;
    expect(mock.statsFor(KEY).byProvider[provider]?.aborted).toBe(1);
  });

  it('stall without chunks never answers until the client goes away', async () => {
    mock.faults.inject(KEY, { kind: 'stall' });
    const arrived = mock.nextEvent('request', { key: KEY });
    const aborted = mock.nextEvent('aborted', { key: KEY });
    const controller = new AbortController();
    const pending = call(chatCall('openai', KEY, { stream: false }), controller.signal).catch((e: unknown) => e);
    await arrived;
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await aborted;
    expect(mock.stats().total.aborted).toBe(1);
  });

  it('malformedSse puts a data line that does not parse into an otherwise complete stream', async () => {
    mock.faults.inject(KEY, { kind: 'malformedSse', afterChunks: 1 });
    const { messages, error } = await readSse(await call(chatCall('openai', KEY)));
    expect(error).toBeUndefined();
    const unparsable = messages.filter((m) => {
      if (m.data === '[DONE]') return false;
      try {
        JSON.parse(m.data);
        return false;
      } catch {
        return true;
      }
    });
    expect(unparsable).toHaveLength(1);
    expect(messages[messages.length - 1]?.data).toBe('[DONE]');
  });

  it('gemini streamError sends a google.rpc.Status inside the 200 stream, then ends', async () => {
    mock.faults.inject(KEY, { kind: 'streamError', afterChunks: 2, error: 'rateLimit' });
    const { messages } = await readSse(await call(chatCall('gemini', KEY)));
    const last = JSON.parse(messages[messages.length - 1]?.data ?? '{}') as { error?: { code: number; status: string } };
    expect(last.error).toMatchObject({ code: 429, status: 'RESOURCE_EXHAUSTED' });
    expect(messages).toHaveLength(3);
  });

  it('stream faults wait for a streaming request; other faults take the next request', async () => {
    mock.faults.inject(KEY, { kind: 'cutStream', afterChunks: 0 });
    expect((await call(chatCall('openai', KEY, { stream: false }))).status).toBe(200);
    expect(mock.faults.list()).toHaveLength(1);
  });
});

describe('fault lifetimes and scoping', () => {
  it('one-shot by default, `times`, sticky until cleared', async () => {
    const status = async () => (await call(chatCall('anthropic', KEY, { stream: false }))).status;
    mock.faults.inject(KEY, { kind: 'serverError' });
    expect([await status(), await status()]).toEqual([500, 200]);

    mock.faults.inject(KEY, { kind: 'overloaded' }, { times: 2 });
    expect([await status(), await status(), await status()]).toEqual([529, 529, 200]);

    mock.faults.inject(KEY, { kind: 'reject', status: 403 }, { sticky: true });
    expect([await status(), await status()]).toEqual([403, 403]);
    mock.faults.clear(KEY);
    expect(await status()).toBe(200);
  });

  it('a fault scoped to one provider leaves the others alone', async () => {
    mock.faults.inject(KEY, { kind: 'reject' }, { provider: 'gemini' });
    expect((await call(chatCall('openai', KEY, { stream: false }))).status).toBe(200);
    expect((await call(chatCall('gemini', KEY, { stream: false }))).status).toBe(400);
  });
});

describe('keys, headers and chunk counts', () => {
  it('answers a missing key, a refused key and a missing anthropic-version in each provider’s shape', async () => {
    const noKey = await fetch(`${mock.baseUrls.openai}/models`);
    expect(noKey.status).toBe(401);
    const gemini = await fetch(`${mock.baseUrls.gemini}/v1beta/models`);
    expect(gemini.status).toBe(403);
    expect(((await gemini.json()) as { error: { status: string } }).error.status).toBe('PERMISSION_DENIED');
    expect(mock.stats().unauthenticated).toBe(2);

    const refused = await call(chatCall('anthropic', 'sk-test-ant-revoked-0000001', { stream: false }));
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } });

    const c = chatCall('anthropic', KEY, { stream: false });
    const headers = { ...(c.init.headers as Record<string, string>) };
    delete headers['anthropic-version'];
    expect((await fetch(c.url, { ...c.init, headers })).status).toBe(400);
  });

  it('gemini accepts the key as ?key=', async () => {
    const response = await fetch(`${mock.baseUrls.gemini}/v1beta/models/gemini-2.5-flash:generateContent?key=${KEY}`, {
      method: 'POST',
      body: JSON.stringify({ contents: [{ parts: [{ text: 'q' }] }] }),
    });
    expect(response.status).toBe(200);
    expect(mock.statsFor(KEY).byProvider.gemini?.requests).toBe(1);
  });

  it('x-mock-chunks and mock-chunks-N set the number of deltas', async () => {
    const viaHeader = await readSse(await call(chatCall('anthropic', KEY, { headers: { 'x-mock-chunks': '50' } })));
    expect(viaHeader.messages.filter((m) => m.event === 'content_block_delta')).toHaveLength(50);
    const viaModel = await readSse(await call(chatCall('gemini', KEY, { model: 'gemini-2.5-flash-mock-chunks-7' })));
    expect(viaModel.messages).toHaveLength(8); // 7 deltas and the finishReason chunk; no end marker
  });

  it('answers unknown paths with the provider’s 404 shape', async () => {
    const response = await fetch(`${mock.baseUrls.openai}/assistants`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` } });
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
  });
});

describe('RPM window', () => {
  it('slides with the injected clock and reports OpenAI windows as Go durations', async () => {
    mock.configure({ rpmPerKey: 2 });
    const first = await call(chatCall('openai', KEY, { stream: false }));
    expect(first.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    now += 20_000;
    await call(chatCall('openai', KEY, { stream: false }));
    now += 10_000;
    const limited = await call(chatCall('openai', KEY, { stream: false }));
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('30');
    expect(limited.headers.get('x-ratelimit-reset-requests')).toBe('50s');
    now += 30_000;
    expect((await call(chatCall('openai', KEY, { stream: false }))).status).toBe(200);
    // Other keys have their own window.
    expect((await call(chatCall('openai', 'sk-test-other-key-0000000b', { stream: false }))).status).toBe(200);
    expect(mock.statsFor(KEY).total).toMatchObject({ requests: 4, rateLimited: 1, completed: 3 });
  });
});

describe('control API over HTTP', () => {
  it('injects faults, reports stats without keys, configures and resets', async () => {
    const post = (path: string, body: unknown) => fetch(`${mock.url}/_mock${path}`, { method: 'POST', body: JSON.stringify(body) });
    expect((await post('/faults', { key: KEY, fault: { kind: 'rateLimit', retryAfterSeconds: 3 } satisfies MockFault, provider: 'anthropic' })).status).toBe(204);
    expect((await post('/faults', { key: KEY, fault: { kind: 'explode' } })).status).toBe(400);
    const listed = (await (await fetch(`${mock.url}/_mock/faults`)).json()) as { faults: { fingerprint: string }[] };
    expect(listed.faults).toEqual([expect.objectContaining({ fingerprint: fingerprintOf(KEY), provider: 'anthropic', remaining: 1 })]);

    const limited = await call(chatCall('anthropic', KEY, { stream: false }));
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('3');

    const statsText = await (await fetch(`${mock.url}/_mock/stats`)).text();
    expect(statsText).not.toContain(KEY);
    const stats = JSON.parse(statsText) as { keys: { fingerprint: string; mask: string; byProvider: Record<string, { rateLimited: number }> }[] };
    expect(stats.keys[0]).toMatchObject({ fingerprint: fingerprintOf(KEY), mask: 'sk-…000a', byProvider: { anthropic: { rateLimited: 1 } } });

    expect((await post('/config', { rpmPerKey: 1 })).status).toBe(204);
    await call(chatCall('gemini', KEY, { stream: false }));
    expect((await call(chatCall('gemini', KEY, { stream: false }))).status).toBe(429);

    expect((await post('/reset', {})).status).toBe(204);
    expect(mock.stats().keys).toEqual([]);
  });
});

describe('Keyrack’s own classifiers read the mock’s errors as intended', () => {
  const cases: [MockFault, Record<MockProviderName, string>][] = [
    [{ kind: 'reject' }, { openai: 'rejected', anthropic: 'rejected', gemini: 'rejected' }],
    [{ kind: 'quota' }, { openai: 'quota_exhausted', anthropic: 'quota_exhausted', gemini: 'quota_exhausted' }],
    [{ kind: 'quota', status: 402 }, { openai: 'quota_exhausted', anthropic: 'quota_exhausted', gemini: 'quota_exhausted' }],
    [{ kind: 'rateLimit', retryAfterSeconds: 7 }, { openai: 'rate_limited', anthropic: 'rate_limited', gemini: 'rate_limited' }],
    [{ kind: 'overloaded' }, { openai: 'transient', anthropic: 'transient', gemini: 'transient' }],
    [{ kind: 'serverError' }, { openai: 'transient', anthropic: 'transient', gemini: 'transient' }],
  ];
  it.each(cases)('%o', async (fault, expected) => {
    for (const provider of PROVIDERS) {
      mock.faults.inject(KEY, fault);
      const response = await call(chatCall(provider, KEY, { stream: false }));
      const input = { status: response.status, headers: response.headers, bodyText: await response.text(), apiKey: KEY, now };
      const error =
        provider === 'openai'
          ? classifyOpenAIError({ ...input, spec: PROVIDER_SPECS.openai })
          : provider === 'anthropic'
            ? classifyAnthropicError(input)
            : classifyGeminiError(input);
      expect({ provider, kind: error.kind }).toEqual({ provider, kind: expected[provider] });
      if (fault.kind === 'rateLimit') expect(error.retryAfterMs).toBe(7000);
    }
  });
});
