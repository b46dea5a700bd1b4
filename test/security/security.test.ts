import { once } from 'node:events';
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { createLogger } from '../../server/observability/logger';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, TEST_JWT_SECRET, type TestGateway } from '../support/gatewayHarness';
import { captureLines } from '../ops/waitFor';

/**
 * Issue #7's security checks against one real gateway (Redis-backed, real keys against the mock):
 * role and owner boundaries, CORS, the body limit, and no secret in any response body, log
 * line, metrics scrape or Redis dump captured during this file's run (checked last).
 */

const PREFIX = `security-${process.pid}-${Date.now()}`;
const PROVIDER_KEY = 'sk-test-security-provider-0000000001';
const ENCRYPTION_KEY = 'cd'.repeat(32);
const METRICS_TOKEN = 'metrics-token-security-000000000';
const BYOK_KEY = 'sk-test-security-byok-alice-00000001';
const SECRETS = [PROVIDER_KEY, TEST_JWT_SECRET, ENCRYPTION_KEY, METRICS_TOKEN, BYOK_KEY];
const ALLOWED_ORIGIN = 'https://app.example.test';
const MAX_BODY = 4_096;

let mock: MockProvider;
let gw: TestGateway;
let redis: Redis;
const logs = captureLines();
const bodies: Promise<string>[] = [];
const realFetch = globalThis.fetch;

beforeAll(async () => {
  // Every response this file receives is kept (streams excepted) to be scanned for secrets.
  globalThis.fetch = async (input, init) => {
    const response = await realFetch(input, init);
    if (!(response.headers.get('content-type') ?? '').includes('event-stream')) bodies.push(response.clone().text().catch(() => ''));
    return response;
  };
  mock = await startMockProvider({ port: 0 });
  gw = await startTestGateway({
    env: {
      OPENAI_API_KEY: PROVIDER_KEY,
      OPENAI_BASE_URL: mock.baseUrls.openai,
      REDIS_URL: inject('redisUrl'),
      REDIS_PREFIX: PREFIX,
      ENCRYPTION_KEY,
      METRICS_TOKEN,
      CORS_ORIGINS: ALLOWED_ORIGIN,
      LOG_LEVEL: 'debug',
    },
    logger: createLogger({ level: 'debug', destination: logs.destination }),
    maxBodyBytes: MAX_BODY,
    // Chat bodies have their own, larger limit (images, issue 20): the same small one here.
    maxChatBodyBytes: MAX_BODY,
  });
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  globalThis.fetch = realFetch;
  await gw?.close();
  await mock?.close();
  redis?.disconnect();
});

const ADMIN_PROCEDURES: { path: string; type: 'query' | 'mutation'; input?: unknown }[] = [
  { path: 'config.get', type: 'query' },
  { path: 'config.set', type: 'mutation', input: { key: 'markup', value: 1 } },
  { path: 'models.upsert', type: 'mutation', input: {} },
  { path: 'models.setActive', type: 'mutation', input: { id: 'gpt-4o', isActive: false } },
  { path: 'pool.status', type: 'query' },
  { path: 'pool.setKeyEnabled', type: 'mutation', input: { provider: 'openai', fingerprint: 'x', enabled: false } },
  { path: 'pool.reload', type: 'mutation' },
  { path: 'usage.byUser', type: 'query' },
  { path: 'usage.byUserPage', type: 'query' },
  { path: 'users.setLimits', type: 'mutation', input: { userId: 'bob', limits: {} } },
  { path: 'users.limits', type: 'query', input: { userId: 'bob' } },
];

function call(path: string, type: 'query' | 'mutation', token: string, input?: unknown): Promise<Response> {
  const url = `${gw.url}/trpc/${path}`;
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  return type === 'query'
    ? fetch(input === undefined ? url : `${url}?input=${encodeURIComponent(JSON.stringify(input))}`, { headers })
    : fetch(url, { method: 'POST', headers, body: JSON.stringify(input ?? null) });
}

describe('security', () => {
  it('no admin procedure answers a user token (nor no token), pool.watch and /admin included', async () => {
    const user = await gw.token('mallory');
    for (const p of ADMIN_PROCEDURES) {
      expect((await call(p.path, p.type, user, p.input)).status, p.path).toBe(403);
      expect((await call(p.path, p.type, 'not-a-token', p.input)).status, p.path).toBe(401);
    }
    const watch = await fetch(`${gw.url}/trpc/pool.watch`, { headers: { authorization: `Bearer ${user}`, accept: 'text/event-stream' } });
    const text = await watch.text();
    expect(text).toContain('FORBIDDEN');
    expect(text).not.toContain('"providers"');
    expect((await fetch(`${gw.url}/admin/api-keys/status`, { headers: { authorization: `Bearer ${user}` } })).status).toBe(403);
    // The admin panel's key switch still works for an admin: the refusals above are about roles.
    expect((await call('pool.status', 'query', await gw.token('root', 'admin'))).status).toBe(200);
  });

  it("no user reaches another user's streams, usage or keys", async () => {
    const alice = gw.trpc(await gw.token('alice'));
    const bob = gw.trpc(await gw.token('bob'));
    const started = await alice.chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'private' }] });
    expect(started.streamId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const refused = await new Promise<unknown>((resolve) => {
      const sub = bob.chat.stream.subscribe(
        { streamId: started.streamId },
        {
          onData: () => resolve('got data'),
          onError: (error) => {
            sub.unsubscribe();
            resolve(error);
          },
        },
      );
    });
    expect(refused).toMatchObject({ data: { code: 'NOT_FOUND' } });

    await alice.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'billable' }] });
    const added = await alice.byok.add.mutate({ provider: 'openai', apiKey: BYOK_KEY, label: 'mine' });
    expect(JSON.stringify(added)).not.toContain(BYOK_KEY);
    expect(await bob.byok.list.query()).toEqual([]);
    await expect(bob.byok.remove.mutate({ id: added.id })).rejects.toMatchObject({ data: { code: 'NOT_FOUND' } });
    expect((await alice.byok.list.query()).map((k) => k.id)).toEqual([added.id]);
    const bobUsage = JSON.stringify(await bob.usage.mine.query());
    expect(bobUsage).not.toContain('alice');
  });

  it('CORS allows only CORS_ORIGINS', async () => {
    const preflight = (origin: string) =>
      fetch(`${gw.url}/trpc/chat.complete`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
    const allowed = await preflight(ALLOWED_ORIGIN);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
    for (const origin of ['https://evil.example.test', 'null', `${ALLOWED_ORIGIN}.evil.test`]) {
      const response = await preflight(origin);
      expect(response.headers.get('access-control-allow-origin'), origin).toBeNull();
    }
    const simple = await fetch(`${gw.url}/healthz`, { headers: { origin: 'https://evil.example.test' } });
    expect(simple.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('bodies over the size limit are refused with 413, declared or chunked', async () => {
    const token = await gw.token('big-sender');
    const big = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY * 4) }] });
    const declared = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: big });
    expect(declared.status).toBe(413);
    const chunked = () =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(big));
          controller.close();
        },
      });
    for (const path of ['/v1/chat/completions', '/trpc/chat.complete']) {
      const response = await fetch(`${gw.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: chunked(),
        duplex: 'half',
      } as RequestInit);
      expect(response.status, path).toBe(413);
    }
  });

  it('a chunked body still arriving past the limit gets its 413, then the connection closes unread', async () => {
    const token = await gw.token('endless-sender');
    const { port } = new URL(gw.url);
    // Keyrack's own body readers (/v1, chat.start) and tRPC's adapter (every other procedure).
    for (const path of ['/v1/chat/completions', '/trpc/chat.start', '/trpc/chat.complete']) {
      const socket = connect(Number(port), '127.0.0.1');
      await once(socket, 'connect');
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      const closed = once(socket, 'close');
      socket.write(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`);
      // Past the limit, and the body never ends: the gateway must answer without waiting for it.
      const piece = 'x'.repeat(MAX_BODY + 1);
      socket.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
      await closed;
      expect(received, path).toMatch(/^HTTP\/1\.1 413 /);
      expect(received.toLowerCase(), path).toContain('connection: close');
    }
  });

  it('no secret in any response body, log line, metrics scrape or Redis dump of this run', async () => {
    // Upstream failures are where a key could leak into a log line: make some.
    mock.faults.inject(PROVIDER_KEY, { kind: 'serverError' }, { times: 1 });
    mock.faults.inject(PROVIDER_KEY, { kind: 'reject' }, { times: 1 });
    const carol = gw.trpc(await gw.token('carol'));
    for (let i = 0; i < 2; i += 1) await carol.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'fail' }] }).catch(() => undefined);
    const scrape = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    expect(scrape).toContain('keyrack_requests_total');
    const keys = await redis.keys(`*${PREFIX}*`);
    expect(keys.length).toBeGreaterThan(0);
    const dump: string[] = [];
    for (const key of keys) {
      const type = await redis.type(key);
      const value =
        type === 'string' ? await redis.get(key)
        : type === 'hash' ? JSON.stringify(await redis.hgetall(key))
        : type === 'list' ? JSON.stringify(await redis.lrange(key, 0, -1))
        : type === 'zset' ? JSON.stringify(await redis.zrange(key, 0, -1, 'WITHSCORES'))
        : type === 'set' ? JSON.stringify(await redis.smembers(key))
        : type === 'stream' ? JSON.stringify(await redis.xrange(key, '-', '+'))
        : '';
      dump.push(`${key}=${value}`);
    }
    const responses = await Promise.all(bodies);
    expect(responses.length).toBeGreaterThan(10);
    expect(logs.lines.length).toBeGreaterThan(0);
    const haystacks = { responses: responses.join('\n'), logs: logs.lines.join('\n'), metrics: scrape, redis: dump.join('\n') };
    for (const [where, text] of Object.entries(haystacks)) {
      for (const secret of SECRETS) expect(text.includes(secret), `${where} contains a secret`).toBe(false);
    }
  });
});
