import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { appRouter } from '../../server/gateway/router';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';

/**
 * Bad input, property-based (issue #7): every query and mutation over real HTTP, and the /v1
 * body, with arbitrary JSON and non-JSON. Always a clear 4xx (never a 500, never a crash) and
 * nothing written: the pool's counters and every Redis key under this gateway's prefix unchanged.
 */

const PREFIX = `badinput-${process.pid}-${Date.now()}`;
const KEY = 'sk-test-badinput-key-0000000000000001';
const RUNS = 60;

let mock: MockProvider;
let gw: TestGateway;
let redis: Redis;
let admin: string;

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  gw = await startTestGateway({
    env: { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: mock.baseUrls.openai, REDIS_URL: inject('redisUrl'), REDIS_PREFIX: PREFIX, ENCRYPTION_KEY: 'ab'.repeat(32) },
  });
  redis = new Redis(inject('redisUrl'));
  admin = await gw.token('bad-input-admin', 'admin');
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
  redis?.disconnect();
});

/** Every key under this gateway's prefix with its serialized value. */
async function dump(): Promise<Record<string, string>> {
  const keys = (await redis.keys(`*${PREFIX}*`)).filter((k) => !k.endsWith(':instances')).sort();
  const out: Record<string, string> = {};
  for (const key of keys) out[key] = ((await redis.dump(key)) ?? '').toString();
  return out;
}

async function poolCounters(): Promise<string> {
  const status = await gw.gateway.pool.status();
  return JSON.stringify(status.providers.map((p) => p.keys.map((k) => [k.fingerprint, k.requestsThisWindow, k.status, k.until])));
}

const arbitraryInput = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(fc.constantFrom('model', 'messages', 'provider', 'id', 'key', 'streamId', 'fingerprint', 'enabled', 'value', 'userId', 'limits', 'apiKey'), fc.jsonValue({ maxDepth: 2 })),
  fc.record({ model: fc.string(), messages: fc.array(fc.record({ role: fc.string(), content: fc.oneof(fc.string(), fc.integer()) }), { maxLength: 3 }) }),
);
const rawBody = fc.oneof(arbitraryInput.map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 }));

async function expectClear4xx(response: Response): Promise<void> {
  const text = await response.text();
  expect(response.status, text.slice(0, 300)).toBeGreaterThanOrEqual(400);
  expect(response.status, text.slice(0, 300)).toBeLessThan(500);
  expect(() => JSON.parse(text)).not.toThrow();
}

const procedures = Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { type: string } }>)
  .filter(([, p]) => p._def.type === 'query' || p._def.type === 'mutation')
  // Takes no input and acts on the environment file: covered by test/ops/gatewayOps.test.ts.
  .filter(([path]) => path !== 'pool.reload')
  .map(([path, p]) => ({ path, type: p._def.type }));

describe('bad input never reaches a 500 or writes anything', () => {
  it('finds the procedures', () => {
    expect(procedures.length).toBeGreaterThan(10);
  });

  it.each(procedures)('$path ($type) answers arbitrary input with a 4xx or a valid answer, never a 500', async ({ path, type }) => {
    const before = { store: await dump(), pool: await poolCounters() };
    await fc.assert(
      fc.asyncProperty(rawBody, async (body) => {
        const url = `${gw.url}/trpc/${path}`;
        const response =
          type === 'query'
            ? await fetch(`${url}?input=${encodeURIComponent(body)}`, { headers: { authorization: `Bearer ${admin}` } })
            : await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body });
        const text = await response.text();
        expect(response.status, `${path} ${body.slice(0, 100)} -> ${text.slice(0, 200)}`).toBeLessThan(500);
        // Reads may accept anything (they take no input); writes must refuse.
        if (type === 'mutation') expect(response.status, `${path} accepted ${body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      }),
      { numRuns: RUNS },
    );
    expect(await dump()).toEqual(before.store);
    expect(await poolCounters()).toBe(before.pool);
  });

  it('/v1/chat/completions refuses arbitrary bodies with a 4xx and never calls upstream', async () => {
    const user = await gw.token('bad-input-user');
    const requestsBefore = mock.stats().total.requests;
    const before = { store: await dump(), pool: await poolCounters() };
    await fc.assert(
      fc.asyncProperty(rawBody, async (body) => {
        await expectClear4xx(
          await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json' }, body }),
        );
      }),
      { numRuns: 300 },
    );
    expect(mock.stats().total.requests).toBe(requestsBefore);
    expect(await dump()).toEqual(before.store);
    expect(await poolCounters()).toBe(before.pool);
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });
});
