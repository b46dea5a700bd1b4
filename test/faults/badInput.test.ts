import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { appRouter } from '../../server/gateway/router';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, TEST_JWT_SECRET, type TestGateway } from '../support/gatewayHarness';

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
let dir: string;
let envFile: string;

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  // pool.reload's input is the environment file: it starts valid and the properties garble it.
  dir = mkdtempSync(join(tmpdir(), 'keyrack-badinput-'));
  envFile = join(dir, '.env');
  writeFileSync(envFile, `OPENAI_API_KEY=${KEY}\n`);
  const env = { OPENAI_BASE_URL: mock.baseUrls.openai, REDIS_URL: inject('redisUrl'), REDIS_PREFIX: PREFIX, ENCRYPTION_KEY: 'ab'.repeat(32), ENV_FILE: envFile };
  gw = await startTestGateway({
    env: { ...env, OPENAI_API_KEY: KEY },
    baseEnv: { ...env, PORT: '0', HOST: '127.0.0.1', MOCK_PROVIDER_PORT: '0', JWT_SECRET: TEST_JWT_SECRET },
  });
  redis = new Redis(inject('redisUrl'));
  admin = await gw.token('bad-input-admin', 'admin');
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
  redis?.disconnect();
  if (dir) rmSync(dir, { recursive: true, force: true });
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

type ProcedureDef = { _def: { type: string; inputs?: { safeParse?: (value: unknown) => { success: boolean } }[] } };

/** Whether a raw body is valid input for the procedure: such a body may rightly be acted on, so the properties skip it. */
function acceptedBy(def: ProcedureDef['_def'], body: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return false;
  }
  const inputs = def.inputs ?? [];
  return inputs.length > 0 && inputs.every((schema) => schema.safeParse?.(value).success === true);
}

const procedures = Object.entries(appRouter._def.procedures as unknown as Record<string, ProcedureDef>)
  .filter(([, p]) => p._def.type === 'query' || p._def.type === 'mutation')
  // Takes no input: its input is the environment file, garbled by its own property below.
  .filter(([path]) => path !== 'pool.reload')
  .map(([path, p]) => ({ path, type: p._def.type, def: p._def }));

describe('bad input never reaches a 500 or writes anything', () => {
  it('finds the procedures', () => {
    expect(procedures.length).toBeGreaterThan(10);
  });

  it.each(procedures)('$path ($type) answers arbitrary input with a 4xx or a valid answer, never a 500', async ({ path, type, def }) => {
    const before = { store: await dump(), pool: await poolCounters() };
    await fc.assert(
      fc.asyncProperty(rawBody, async (body) => {
        // Bad input only: a generated body that happens to be valid (e.g. limits {} for user 'a') may be applied.
        fc.pre(!acceptedBy(def, body));
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

  it('pool.reload of a garbled environment file reports what is wrong, echoes no value and changes nothing', async () => {
    const before = { store: await dump(), pool: await poolCounters() };
    const junkLine = fc.oneof(
      fc.string({ maxLength: 60 }).map((t) => t.replace(/[\r\n]/g, ' ')),
      fc.tuple(fc.constantFrom('OPENAI_API_KEY_2', 'ANTHROPIC_API_KEY', 'KEY_STRATEGY', 'REQUEST_TIMEOUT_MS', 'X'), fc.string({ maxLength: 40 })).map(([k, v]) => `${k}=${v.replace(/[\r\n]/g, '')}`),
    );
    // At least one setting that can never validate, last (a later line with the same name would win).
    const invalid = fc.constantFrom('OPENAI_RPM_PER_KEY=plenty-of-them', 'OPENAI_TPM_PER_KEY=-5', 'REQUEST_TIMEOUT_MS=soon-enough');
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(junkLine, { maxLength: 6 }), invalid, async (junk, bad) => {
          const lines = [`OPENAI_API_KEY=${KEY}`, ...junk, bad];
          writeFileSync(envFile, lines.join('\n') + '\n');
          const response = await fetch(`${gw.url}/trpc/pool.reload`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: 'null' });
          const text = await response.text();
          expect(response.status, text.slice(0, 300)).toBeLessThan(500);
          const result = (JSON.parse(text) as { result?: { data?: { ok?: boolean } } }).result?.data;
          expect(result?.ok, text.slice(0, 300)).toBe(false);
          expect(text).toContain(bad.slice(0, bad.indexOf('='))); // names the variable
          expect(text).not.toContain(bad.slice(bad.indexOf('=') + 1)); // never its value
        }),
        { numRuns: 40 },
      );
    } finally {
      writeFileSync(envFile, `OPENAI_API_KEY=${KEY}\n`);
    }
    expect(await dump()).toEqual(before.store);
    expect(await poolCounters()).toBe(before.pool);
  });

  it.each(['chat.stream', 'pool.watch'])('subscription %s answers arbitrary input with a clear refusal or its stream, never a 500, calling no provider', async (path) => {
    const user = await gw.token('bad-input-subscriber');
    const requestsBefore = mock.stats().total.requests;
    const before = { store: await dump(), pool: await poolCounters() };
    await fc.assert(
      fc.asyncProperty(rawBody, fc.boolean(), async (body, asAdmin) => {
        const controller = new AbortController();
        const response = await fetch(`${gw.url}/trpc/${path}?input=${encodeURIComponent(body)}`, {
          headers: { authorization: `Bearer ${asAdmin ? admin : user}`, accept: 'text/event-stream' },
          signal: controller.signal,
        });
        expect(response.status, `${path} ${body.slice(0, 100)}`).toBeLessThan(500);
        if (!(response.headers.get('content-type') ?? '').includes('event-stream')) {
          expect(response.status).toBeGreaterThanOrEqual(400);
          await response.text();
          return;
        }
        // A stream: read until its first data or error event, then leave.
        const reader = response.body!.getReader();
        let seen = '';
        while (!/\n\n/.test(seen.replace(/^[^\n]*connected[^\n]*\n[^\n]*\n\n/, ''))) {
          const { value, done } = await reader.read();
          if (done) break;
          seen += new TextDecoder().decode(value);
        }
        controller.abort();
        const error = /event: serialized-error\ndata: (.*)\n/.exec(seen);
        if (error) expect((JSON.parse(error[1]!) as { data: { httpStatus: number } }).data.httpStatus, seen.slice(0, 300)).toBeLessThan(500);
        else expect(path === 'pool.watch' && asAdmin, `${path} streamed for ${body.slice(0, 100)}: ${seen.slice(0, 200)}`).toBe(true);
      }),
      { numRuns: RUNS },
    );
    expect(mock.stats().total.requests).toBe(requestsBefore);
    expect(await dump()).toEqual(before.store);
    expect(await poolCounters()).toBe(before.pool);
  });
});
