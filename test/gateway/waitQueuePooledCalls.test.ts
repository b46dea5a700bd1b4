import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue 22 on the endpoints beyond chat (issue 21): /v1/embeddings, /v1/responses and
 * /v1/messages wait for capacity as a chat does (x-keyrack-max-wait-ms, the pool's queue),
 * refuse a bad header with a 400 naming it, and count in the user's fair share with the user's
 * weight. Demo mode: two keys (accounts) per provider at 1 request per WINDOW ms each.
 */

const WINDOW = 600;
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({
    env: {
      OPENAI_RPM_PER_KEY: '1',
      ANTHROPIC_RPM_PER_KEY: '1',
      OPENAI_QUEUE_MAX: '50',
      OPENAI_QUEUE_MAX_WAIT_MS: '3000',
      ANTHROPIC_QUEUE_MAX: '50',
      ANTHROPIC_QUEUE_MAX_WAIT_MS: '3000',
    },
    models: [
      testModel('gpt-4o', 'openai'),
      testModel('text-embedding-3-small', 'openai', { kind: 'embedding', embedding: { dimensions: 1536, adjustable_dimensions: true }, output_price: 0 }),
      testModel('claude-sonnet-4', 'anthropic', { upstream_model: 'claude-sonnet-4-20250514' }),
    ],
    pool: { windowMs: WINDOW },
  });
});
afterAll(() => gw?.close());

type Endpoint = 'embeddings' | 'responses' | 'messages';
const BODIES: Record<Endpoint, unknown> = {
  embeddings: { model: 'text-embedding-3-small', input: 'wait for a key' },
  responses: { model: 'gpt-4o', input: 'wait for a key' },
  messages: { model: 'claude-sonnet-4', max_tokens: 64, messages: [{ role: 'user', content: 'wait for a key' }] },
};

function post(endpoint: Endpoint, token: string, headers: Record<string, string> = {}): Promise<Response> {
  const auth: Record<string, string> = endpoint === 'messages' ? { 'x-api-key': token, 'anthropic-version': '2023-06-01' } : { authorization: `Bearer ${token}` };
  return fetch(`${gw.url}/v1/${endpoint}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', ...headers }, body: JSON.stringify(BODIES[endpoint]) });
}

describe('issue 22: pooled calls wait for capacity too', () => {
  it.each(['embeddings', 'responses', 'messages'] as const)('/v1/%s: a burst of twice the capacity with a max wait is served in full, within it', async (endpoint) => {
    const token = await gw.token(`burst-${endpoint}`);
    const started = Date.now();
    // Capacity is 2 per window; 4 at once: two served now, two when the window frees a slot.
    const answers = await Promise.all(Array.from({ length: 4 }, () => post(endpoint, token, { 'x-keyrack-max-wait-ms': '3000' })));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(WINDOW - 50); // some of them did wait...
    expect(took).toBeLessThan(3_000); // ...within the wait they were given
  });

  it('x-keyrack-max-wait-ms: 0 does not wait: a busy pool is a 429 with Retry-After at once', async () => {
    const token = await gw.token('no-wait');
    const statuses: number[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 4 && !refused; i++) {
      const res = await post('embeddings', token, { 'x-keyrack-max-wait-ms': '0' });
      statuses.push(res.status);
      if (res.status === 429) refused = res;
    }
    expect(refused, `statuses: ${statuses.join(',')}`).toBeDefined();
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await refused!.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
  });

  it('a bad x-keyrack-max-wait-ms is a 400 naming the header on every endpoint, before any upstream call', async () => {
    const token = await gw.token('bad-header');
    const before = gw.gateway.mock!.stats().total.requests;
    for (const endpoint of ['embeddings', 'responses'] as const) {
      const res = await post(endpoint, token, { 'x-keyrack-max-wait-ms': 'soon' });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe('x-keyrack-max-wait-ms');
    }
    const res = await post('messages', token, { 'x-keyrack-max-wait-ms': '-1' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringMatching(/^x-keyrack-max-wait-ms /) } });
    expect(gw.gateway.mock!.stats().total.requests).toBe(before);
  });

  it('tRPC embeddings.create: maxWaitMs is validated like any field, and waits', async () => {
    const client = gw.trpc(await gw.token('trpc-wait'));
    await expect(client.embeddings.create.mutate({ model: 'text-embedding-3-small', input: 'x', maxWaitMs: 600_001 })).rejects.toMatchObject({ data: { code: 'BAD_REQUEST' } });
    const answers = await Promise.all(Array.from({ length: 3 }, () => client.embeddings.create.mutate({ model: 'text-embedding-3-small', input: 'x', maxWaitMs: 3_000 })));
    expect(answers.map((a) => a.embeddings.length)).toEqual([1, 1, 1]);
  });

  it("an embeddings call counts in the user's fair share with the user's weight", async () => {
    const admin = gw.trpc(await gw.token('root', 'admin'));
    await admin.users.setLimits.mutate({ userId: 'heidi', limits: { weight: 3 } });
    expect((await post('embeddings', await gw.token('heidi'), { 'x-keyrack-max-wait-ms': '3000' })).status).toBe(200);
    const openai = (await admin.pool.status.query()).providers.find((p) => p.provider === 'openai')!;
    expect(openai.users?.find((u) => u.userId === 'heidi')).toMatchObject({ weight: 3, requestsThisWindow: 1 });
  });
});
