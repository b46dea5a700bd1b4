import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';
import { forEachRedisTopology } from '../support/redisTopologies';

/**
 * Issue 22 through the gateway: two instances on one Redis share one wait queue per pool, on a
 * single Redis node and on a Redis Cluster. The demo pool has two keys (two accounts) at
 * OPENAI_RPM_PER_KEY=2 per WINDOW ms: 4 per window.
 */

const WINDOW = 800;

forEachRedisTopology((topology) => {
let a: TestGateway;
let b: TestGateway;

beforeAll(async () => {
  const env = {
    REDIS_URL: topology.url(),
    REDIS_PREFIX: `gw-wait-${topology.cluster ? 'cluster-' : ''}${process.pid}-${Date.now()}`,
    OPENAI_RPM_PER_KEY: '2',
    OPENAI_QUEUE_MAX: '100',
    OPENAI_QUEUE_MAX_WAIT_MS: '2000',
  };
  const models = [testModel('gpt-4o', 'openai')];
  a = await startTestGateway({ env, models, pool: { windowMs: WINDOW } });
  b = await startTestGateway({ env, models, pool: { windowMs: WINDOW } });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

function chat(gw: TestGateway, token: string, headers: Record<string, string> = {}) {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'wait for it' }] }),
  });
}

describe('issue 22: waiting for capacity across gateway instances', () => {
  it('a burst of 2x capacity over two instances, 2 s max wait: every request is served within it', async () => {
    const token = await a.token('alice');
    const started = Date.now();
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => chat(i % 2 ? b : a, token, { 'x-keyrack-max-wait-ms': '2000' })));
    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('x-keyrack-max-wait-ms: 0 does not wait: every key busy is a 429 with Retry-After at once', async () => {
    const token = await a.token('bob');
    let refused: Response | undefined;
    for (let i = 0; i < 10 && !refused; i++) {
      const res = await chat(i % 2 ? b : a, token, { 'x-keyrack-max-wait-ms': '0' });
      if (res.status === 429) refused = res;
      else expect(res.status).toBe(200);
    }
    expect(refused?.status).toBe(429);
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await refused!.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
  });

  it('a bad x-keyrack-max-wait-ms is refused with a 400 naming the header, before any upstream call', async () => {
    const token = await a.token('carol');
    const before = a.gateway.mock!.stats().total.requests;
    for (const value of ['-1', 'soon', '600001']) {
      const res = await chat(a, token, { 'x-keyrack-max-wait-ms': value });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe('x-keyrack-max-wait-ms');
    }
    expect(a.gateway.mock!.stats().total.requests).toBe(before);
  });

  it('tRPC: maxWaitMs is part of the chat input, validated like any field', async () => {
    const client = a.trpc(await a.token('dave'));
    await expect(client.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], maxWaitMs: -5 })).rejects.toMatchObject({ data: { code: 'BAD_REQUEST' } });
    const answer = await client.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], maxWaitMs: 2_000 });
    expect(answer.text).toMatch(/^Mock answer/);
  });

  it('the admin pool view shows the queue and the users of the window with their share', async () => {
    const admin = b.trpc(await b.token('root', 'admin'));
    // The weight is one of the user's limits, set by an admin (validated: whole, 1..1000).
    await expect(admin.users.setLimits.mutate({ userId: 'erin', limits: { weight: 0 } })).rejects.toMatchObject({ data: { code: 'BAD_REQUEST' } });
    await admin.users.setLimits.mutate({ userId: 'erin', limits: { weight: 2 } });
    expect((await chat(b, await b.token('erin'), { 'x-keyrack-max-wait-ms': '2000' })).status).toBe(200);
    const openai = (await admin.pool.status.query()).providers.find((p) => p.provider === 'openai')!;
    expect(openai.queue).toMatchObject({ maxLength: 100, maxWaitMs: 2_000 });
    expect(openai.users?.find((u) => u.userId === 'erin')).toMatchObject({ weight: 2, requestsThisWindow: expect.any(Number) });
    expect(openai.users?.every((u) => u.weight >= 1 && u.shareRpm >= 0)).toBe(true);
  });
});
});
