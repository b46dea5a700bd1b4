import { TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/** Everything around the procedures: health, limits, request ids, CORS, the seed's admin endpoint, dev tokens. */

let demo: TestGateway;

beforeAll(async () => {
  demo = await startTestGateway({
    // Nothing a deployment sets (JWT_SECRET dropped): demo mode with /dev/token, as `npm start` on a fresh clone.
    env: { CORS_ORIGINS: 'https://app.example', OPENAI_RPM_PER_KEY: '1', JWT_SECRET: '', KEYRACK_DEMO: '' },
    models: [testModel('gpt-4o', 'openai')],
  });
});
afterAll(() => demo?.close());

describe('HTTP surface (demo mode)', () => {
  it('healthz and readyz', async () => {
    expect(await (await fetch(`${demo.url}/healthz`)).json()).toEqual({ ok: true });
    const ready = await fetch(`${demo.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ok: true, checks: { store: 'ok', providers: 'ok' } });
  });

  it('gives every response an x-request-id, keeping a sane one the caller sent', async () => {
    const mine = await fetch(`${demo.url}/healthz`, { headers: { 'x-request-id': 'abc-123' } });
    expect(mine.headers.get('x-request-id')).toBe('abc-123');
    const generated = await fetch(`${demo.url}/healthz`, { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses bodies over 1 MiB with 413 before reading them (chat requests: over 16 MiB)', async () => {
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(1_100_000) }] });
    for (const path of ['/trpc/models.upsert', '/dev/token']) {
      const res = await fetch(`${demo.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status, path).toBe(413);
    }
    // Issue 20: a chat may carry images as data URLs; over 1 MiB is read only for a valid token
    // (/v1 answers 401 unread; tRPC reads to 1 MiB for a caller without one).
    const noToken = { '/trpc/chat.complete': 413, '/v1/chat/completions': 401 };
    for (const [path, status] of Object.entries(noToken)) {
      const res = await fetch(`${demo.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status, path).toBe(status);
    }
    const huge = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(17 * 1024 * 1024) }] });
    for (const path of ['/trpc/chat.complete', '/v1/chat/completions']) {
      const res = await fetch(`${demo.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: huge });
      expect(res.status, path).toBe(413);
    }
  });

  it('CORS headers only for CORS_ORIGINS', async () => {
    const allowed = await fetch(`${demo.url}/trpc/models.list`, { method: 'OPTIONS', headers: { origin: 'https://app.example' } });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    const foreign = await fetch(`${demo.url}/healthz`, { headers: { origin: 'https://evil.example' } });
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('GET /admin/api-keys/status: the pool.status JSON for admins only', async () => {
    const url = `${demo.url}/admin/api-keys/status`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${await demo.token('alice')}` } })).status).toBe(403);
    const res = await fetch(url, { headers: { authorization: `Bearer ${await demo.token('root', 'admin')}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { providers: { provider: string; keys: { mask: string }[] }[] };
    const viaTrpc = await demo.trpc(await demo.token('root', 'admin')).pool.status.query();
    expect(body.providers.map((p) => p.provider)).toEqual(viaTrpc.providers.map((p) => p.provider));
    // Demo keys are fake and shown masked only.
    expect(JSON.stringify(body)).not.toContain('sk-test-demo-openai-1');
  });

  it('POST /dev/token mints tokens in demo mode', async () => {
    const res = await fetch(`${demo.url}/dev/token`, { method: 'POST', body: JSON.stringify({ sub: 'demo-user', role: 'admin' }) });
    const { token } = (await res.json()) as { token: string };
    expect(await demo.gateway.tokens.verify(token)).toEqual({ ok: true, user: { id: 'demo-user', role: 'admin' } });
    expect((await fetch(`${demo.url}/dev/token`, { method: 'POST', body: '{"role":"admin"}' })).status).toBe(400);
  });

  it('tRPC: every key busy is TOO_MANY_REQUESTS with retryAfterMs in error data', async () => {
    const client = demo.trpc(await demo.token('alice'));
    const chat = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hi' }] };
    await client.chat.complete.mutate(chat);
    await client.chat.complete.mutate(chat);
    const error = (await client.chat.start.mutate(chat).catch((e: unknown) => e)) as TRPCClientError<never>;
    expect(error).toBeInstanceOf(TRPCClientError);
    expect(error.data).toMatchObject({ code: 'TOO_MANY_REQUESTS', httpStatus: 429, gatewayCode: 'rate_limited' });
    expect((error.data as unknown as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
  });

  it('/ answers 404 with a hint when the demo client is not built', async () => {
    const res = await fetch(`${demo.url}/`);
    expect(res.status).toBe(404);
    expect(await res.text()).toMatch(/build:client/);
  });
});

describe('HTTP surface (provider keys set)', () => {
  let mock: MockProvider;
  let gw: TestGateway;
  beforeAll(async () => {
    mock = await startMockProvider();
    gw = await startTestGateway({
      env: { OPENAI_API_KEY_1: 'sk-test-keyed-gateway-1', OPENAI_BASE_URL: mock.baseUrls.openai },
      models: [testModel('gpt-4o', 'openai')],
    });
  });
  afterAll(async () => {
    await gw?.close();
    await mock?.close();
  });

  it('has no /dev/token and no mock; proxies to the configured base URL', async () => {
    expect(gw.gateway.demoMode).toBe(false);
    expect(gw.gateway.mock).toBeNull();
    expect((await fetch(`${gw.url}/dev/token`, { method: 'POST', body: '{"sub":"x"}' })).status).toBe(404);
    const answer = await gw.trpc(await gw.token('alice')).chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'real path' }] });
    expect(answer.text).toMatch(/^Mock answer to: real path/);
    expect(mock.statsFor('sk-test-keyed-gateway-1').total.completed).toBe(1);
  });
});
