import { TRPCClientError } from '@trpc/client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue 24.11: every 429 the gateway sends says when to come back. A provider's quota error
 * names no time, and once the attempts ran out the answer was a 429 quota_exhausted without
 * `Retry-After` (on /v1) or `retryAfterMs` (tRPC), so clients retried at once or never.
 */

const KEYS = ['sk-test-retry-after-key-one-000000001', 'sk-test-retry-after-key-two-000000002'] as const;

let mock: MockProvider;
let gw: TestGateway | undefined;
let user: string;

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
});

const chat = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'out of money?' }] };

/**
 * A fresh gateway (no key cooling from the case before) whose two keys both answer the next
 * request with `fault`: two keys, two attempts, so the answer is the last attempt's failure.
 */
async function bothKeysFail(fault: Parameters<MockProvider['faults']['inject']>[1] = { kind: 'quota' }): Promise<TestGateway> {
  await gw?.close();
  mock.reset();
  gw = await startTestGateway({
    env: { OPENAI_API_KEY_1: KEYS[0], OPENAI_API_KEY_2: KEYS[1], OPENAI_BASE_URL: mock.baseUrls.openai, MAX_ATTEMPTS: '2' },
  });
  user = await gw.token('retry-after-user');
  for (const key of KEYS) mock.faults.inject(key, fault, { times: 1 });
  return gw;
}

describe('429 answers carry Retry-After', () => {
  it('issue 24.11: a quota_exhausted 429 on /v1 carries Retry-After (non-stream and stream)', async () => {
    for (const stream of [false, true]) {
      const gw = await bothKeysFail();
      const res = await request(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...chat, stream }),
      });
      const body = (await res.body.json()) as { error: { code: string } };
      expect(res.statusCode).toBe(429);
      expect(body.error.code).toBe('quota_exhausted');
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
  });

  it('issue 24.11: a quota_exhausted 429 on tRPC carries Retry-After and retryAfterMs (chat.start, chat.complete)', async () => {
    for (const path of ['chat.start', 'chat.complete']) {
      const gw = await bothKeysFail();
      const res = await request(`${gw.url}/trpc/${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json' },
        body: JSON.stringify(chat),
      });
      const body = (await res.body.json()) as { error: { data: { gatewayCode: string; retryAfterMs?: number } } };
      expect(res.statusCode, path).toBe(429);
      expect(body.error.data.gatewayCode).toBe('quota_exhausted');
      expect(body.error.data.retryAfterMs, path).toBeGreaterThan(0);
      expect(Number(res.headers['retry-after']), path).toBeGreaterThanOrEqual(1);
    }
    // The typed client sees it too.
    const last = await bothKeysFail();
    const error = (await last.trpc(user).chat.complete.mutate(chat).catch((e: unknown) => e)) as TRPCClientError<never>;
    expect(error).toBeInstanceOf(TRPCClientError);
    expect((error.data as unknown as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
  });

  it('issue 24.11: a rate-limit 429 on tRPC carries the Retry-After header too', async () => {
    const gw = await bothKeysFail({ kind: 'rateLimit', retryAfterSeconds: 30 });
    const res = await request(`${gw.url}/trpc/chat.start`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json' },
      body: JSON.stringify(chat),
    });
    await res.body.text();
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });
});
