import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';
import { freePort, startRedisServer, type RedisServer } from '../support/redisServer';
import { waitFor } from './waitFor';

/**
 * Issue #7, Redis faults, end to end: a gateway on its own redis-server, which the test kills
 * and restarts on the same port while chats keep being served.
 */

const KEY = 'sk-test-outage-key-000000000000000001';

let redis: RedisServer;
let mock: MockProvider;
let gw: TestGateway;

beforeAll(async () => {
  redis = await startRedisServer();
  mock = await startMockProvider({ port: 0 });
  gw = await startTestGateway({ 
    env: { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: mock.baseUrls.openai, REDIS_URL: redis.url, REDIS_PREFIX: `outage-${process.pid}` },
  });
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
  await redis?.stop();
});

const readyz = async () => (await fetch(`${gw.url}/readyz`)).status;

describe('Redis lost and back while serving', () => {
  it('keeps answering chats on the fallback, fails /readyz meanwhile, recovers without a restart', async () => {
    const user = gw.trpc(await gw.token('outage-user'));
    const ask = (content: string) => user.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content }] });
    expect((await ask('before')).text).toContain('Mock answer');
    expect(await readyz()).toBe(200);
    // Usage is written behind (UsageLedger.writeBehindMs): write this one to the old server now.
    await gw.gateway.deps.domain!.ledger.flush();

    const store = gw.gateway.resilientStore!;
    const degraded = new Promise<void>((resolve) => {
      const off = store.onModeChange((mode) => mode === 'fallback' && (off(), resolve()));
    });
    await redis.stop();
    await degraded;
    expect(await readyz()).toBe(503);
    for (let i = 0; i < 5; i += 1) expect((await ask(`during ${i}`)).text).toContain('Mock answer');
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);

    const back = new Promise<void>((resolve) => {
      const off = store.onModeChange((mode) => mode === 'redis' && (off(), resolve()));
    });
    redis = await startRedisServer(redis.port);
    await back;
    await waitFor(async () => (await readyz()) === 200, '/readyz back to 200');
    // This redis-server keeps nothing on disk, so it came back empty: seed the catalog again
    // (production Redis runs with persistence). The key pool needs nothing: it is in ENV.
    await gw.gateway.business.init();
    expect((await ask('after')).text).toContain('Mock answer');
    expect(mock.statsFor(KEY).total.requests).toBe(7);
    // Usage of the answers served during the outage waited in the outbox and is now in Redis
    // (the one before the outage went with the old, non-persistent redis-server).
    const ledger = gw.gateway.deps.domain!.ledger;
    await ledger.flush();
    expect(ledger.pending).toBe(0);
    expect((await user.usage.mine.query()).requests).toBe(6);
  });
});

describe('Redis down at start-up', () => {
  it('starts anyway on the local fallback with /readyz failing, and moves to Redis when it comes up', async () => {
    const port = await freePort();
    const late = await startTestGateway({
      env: { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: mock.baseUrls.openai, REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_PREFIX: `late-${process.pid}` },
    });
    let server: RedisServer | undefined;
    try {
      expect(late.gateway.resilientStore!.isDegraded()).toBe(true);
      expect((await fetch(`${late.url}/readyz`)).status).toBe(503);
      const user = late.trpc(await late.token('early-user'));
      expect((await user.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'cold start' }] })).text).toContain('Mock answer');

      server = await startRedisServer(port);
      await waitFor(async () => (await fetch(`${late.url}/readyz`)).status === 200, '/readyz 200 once Redis is up');
      expect(late.gateway.resilientStore!.isDegraded()).toBe(false);
    } finally {
      await late.close();
      await server?.stop();
    }
  });
});
