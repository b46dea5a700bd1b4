import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';
import { startRedisServer, type RedisServer } from '../support/redisServer';
import { waitFor } from './waitFor';

/**
 * Issue 24.8: a Redis that stops answering (SIGSTOP: the connection stays open, no replies)
 * rather than going away. Before the fix a chat waited ~10 s on the data connection's command
 * timeout and came back as a 502 blaming the provider, and /readyz hung.
 *
 * Bounds are generous on purpose (a loaded box): the fix answers in about a second, the bug
 * took ten.
 */

const KEY = 'sk-test-stall-key-0000000000000000001';
/** Well under the old 10 s command timeout, well over the ~1 s the fix takes. */
const FAST_MS = 5_000;

let redis: RedisServer;
let mock: MockProvider;
let gw: TestGateway;
let stopped = false;

beforeAll(async () => {
  redis = await startRedisServer();
  mock = await startMockProvider({ port: 0 });
  gw = await startTestGateway({
    env: { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: mock.baseUrls.openai, REDIS_URL: redis.url, REDIS_PREFIX: `stall-${process.pid}` },
  });
});
afterAll(async () => {
  // A stopped redis-server ignores SIGTERM until continued: always continue it first.
  if (stopped) redis?.process.kill('SIGCONT');
  await gw?.close();
  await mock?.close();
  await redis?.stop();
});

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const startedAt = performance.now();
  const value = await run();
  return { value, ms: performance.now() - startedAt };
}

const readyz = async () => {
  const res = await fetch(`${gw.url}/readyz`);
  return { status: res.status, body: (await res.json()) as { checks: Record<string, string> } };
};

async function v1Chat(token: string, content: string): Promise<{ status: number; body: string; retryAfter: string | null }> {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content }] }),
  });
  return { status: res.status, body: await res.text(), retryAfter: res.headers.get('retry-after') };
}

/** Served, or refused in a way that names the store (never a 502 blaming the provider). */
function expectServedOrBlamesStore(result: { status: number; body: string; retryAfter: string | null }): void {
  if (result.status === 200) {
    expect(result.body).toContain('Mock answer');
    return;
  }
  expect(result.status).toBe(503);
  expect(result.body).toContain('store_unavailable');
  expect(result.retryAfter).not.toBeNull();
}

describe('issue 24.8: a stalled Redis (SIGSTOP)', () => {
  it('issue 24.8: /readyz answers 503 at once and chats are served within a second or two, not after the 10 s command timeout', async () => {
    const token = await gw.token('stall-user');
    const user = gw.trpc(token);
    expect((await v1Chat(token, 'before')).status).toBe(200);
    expect((await user.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'before' }] })).text).toContain('Mock answer');
    expect((await readyz()).status).toBe(200);
    await gw.gateway.deps.domain!.ledger.flush();

    redis.process.kill('SIGSTOP');
    stopped = true;

    const ready = await timed(readyz);
    expect(ready.value.status).toBe(503);
    expect(['stalled', 'unreachable']).toContain(ready.value.body.checks.store);
    expect(ready.ms).toBeLessThan(FAST_MS);

    const v1 = await timed(() => v1Chat(token, 'during the stall'));
    expectServedOrBlamesStore(v1.value);
    expect(v1.ms).toBeLessThan(FAST_MS);

    const trpc = await timed(() =>
      user.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'during the stall' }] }).then(
        (answer) => ({ ok: true as const, text: answer.text }),
        (error: unknown) => ({ ok: false as const, error: error as { message: string; data?: { code?: string; gatewayCode?: string } } }),
      ),
    );
    if (trpc.value.ok) expect(trpc.value.text).toContain('Mock answer');
    else expect(JSON.stringify(trpc.value.error.data)).toContain('store_unavailable');
    expect(trpc.ms).toBeLessThan(FAST_MS);
    // Still fast once the stall is known (no request waits on a timeout again).
    const again = await timed(() => v1Chat(token, 'still stalled'));
    expectServedOrBlamesStore(again.value);
    expect(again.ms).toBeLessThan(FAST_MS);
    expect((await timed(readyz)).ms).toBeLessThan(FAST_MS);
    // What cannot be served without the store says so: 503 store_unavailable with a retry time, not a 500.
    const usage = await timed(() => user.usage.mine.query().then(() => null, (error: unknown) => error as { data?: { httpStatus?: number; gatewayCode?: string; retryAfterMs?: number } }));
    expect(usage.value?.data).toMatchObject({ httpStatus: 503, gatewayCode: 'store_unavailable' });
    expect(usage.value?.data?.retryAfterMs).toBeGreaterThan(0);
    expect(usage.ms).toBeLessThan(FAST_MS);

    redis.process.kill('SIGCONT');
    stopped = false;
    await waitFor(async () => (await readyz()).status === 200, '/readyz back to 200 after SIGCONT');
    expect((await v1Chat(token, 'after')).status).toBe(200);
    expect((await user.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'after' }] })).text).toContain('Mock answer');
  });
});
