import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseGatewayEnv } from '../../server/config/env';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';
import { ProviderError } from '../../server/providers/ProviderError';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, TEST_JWT_SECRET, type TestGateway } from '../support/gatewayHarness';
import { waitFor } from '../ops/waitFor';

/**
 * Issue 24.11: an upstream that accepts the connection and sends no headers was never retried
 * on another key. The request timeout was also the retry deadline, so the stalled attempt used
 * it all up and the answer was an upstream_error. UPSTREAM_FIRST_BYTE_TIMEOUT_MS abandons such
 * an attempt early; the dispatcher then tries the next key within REQUEST_TIMEOUT_MS.
 */

const KEYS = ['sk-test-first-byte-key-one-0000000001', 'sk-test-first-byte-key-two-0000000002'] as const;

let mock: MockProvider;
let gw: TestGateway;
let user: string;

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  gw = await startTestGateway({
    env: {
      OPENAI_API_KEY_1: KEYS[0],
      OPENAI_API_KEY_2: KEYS[1],
      OPENAI_BASE_URL: mock.baseUrls.openai,
      OPENAI_RPM_PER_KEY: '100000',
      // Before the fix the stalled attempt ran into this and the request failed.
      REQUEST_TIMEOUT_MS: '4000',
      UPSTREAM_FIRST_BYTE_TIMEOUT_MS: '150',
    },
  });
  user = await gw.token('first-byte-user');
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
});

async function streamV1(): Promise<{ status: number; text: string }> {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'anyone there?' }] }),
  });
  return { status: res.status, text: await res.text() };
}

describe('first-byte timeout', () => {
  it('issue 24.11: a stalled upstream (no headers) is retried on another key within the request timeout', async () => {
    mock.reset();
    // The first key accepts and never answers; the second answers. Round-robin starts the
    // two requests on different keys, so one of them meets the stall first.
    mock.faults.inject(KEYS[0], { kind: 'stall' }, { sticky: true });
    for (let i = 0; i < 2; i += 1) {
      const { status, text } = await streamV1();
      expect(status).toBe(200);
      expect(text).toContain('"content":"Mock"');
      expect(text).toContain('"finish_reason":"stop"');
      expect(text).toContain('data: [DONE]');
    }
    // The stalled attempt was abandoned (its connection closed), the other key served both.
    expect(mock.statsFor(KEYS[0]).total.requests).toBeGreaterThanOrEqual(1);
    await waitFor(() => mock.statsFor(KEYS[0]).total.aborted === mock.statsFor(KEYS[0]).total.requests, 'stalled attempts to be closed');
    expect(mock.statsFor(KEYS[1]).total.completed).toBe(2);
  });

  it('issue 24.11: the same through tRPC chat.start / chat.stream', async () => {
    mock.reset();
    mock.faults.inject(KEYS[0], { kind: 'stall' }, { sticky: true });
    const client = gw.trpc(user);
    for (let i = 0; i < 2; i += 1) {
      const started = await client.chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'still there?' }] });
      expect(started.events.map((e) => e.event.type)).toContain('start');
    }
    expect(mock.statsFor(KEYS[0]).total.requests).toBeGreaterThanOrEqual(1);
  });

  it('issue 24.11: UPSTREAM_FIRST_BYTE_TIMEOUT_MS defaults within REQUEST_TIMEOUT_MS and may not exceed it', () => {
    const base = { JWT_SECRET: TEST_JWT_SECRET, OPENAI_API_KEY: KEYS[0] };
    expect(parseGatewayEnv(base).firstByteTimeoutMs).toBe(15_000);
    expect(parseGatewayEnv({ ...base, REQUEST_TIMEOUT_MS: '5000' }).firstByteTimeoutMs).toBe(5_000);
    expect(parseGatewayEnv({ ...base, UPSTREAM_FIRST_BYTE_TIMEOUT_MS: '2500' }).firstByteTimeoutMs).toBe(2_500);
    let refused: unknown;
    try {
      parseGatewayEnv({ ...base, REQUEST_TIMEOUT_MS: '1000', UPSTREAM_FIRST_BYTE_TIMEOUT_MS: '2000' });
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).problems.map((p) => p.variable)).toEqual(['UPSTREAM_FIRST_BYTE_TIMEOUT_MS']);
  });
});

describe('UpstreamHttp headers timeout', () => {
  it('issue 24.11: a call with no response headers within its limit fails as first_byte_timeout, on both transports', async () => {
    // Accepts, reads the request, never answers.
    const server = createServer((req) => req.resume());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      for (const transport of ['undici', 'fetch'] as const) {
        const http = new UpstreamHttp({ transport });
        const error = await http
          .fetch(`http://127.0.0.1:${port}/stall`, { method: 'POST', headers: {}, body: '{}', signal: new AbortController().signal, apiKey: KEYS[0], headersTimeoutMs: 100 })
          .catch((e: unknown) => e);
        await http.close();
        expect(ProviderError.isInstance(error), transport).toBe(true);
        expect(error, transport).toMatchObject({ kind: 'transient', providerCode: 'first_byte_timeout' });
      }
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
