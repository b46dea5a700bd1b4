import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, TEST_JWT_SECRET, type TestGateway } from '../support/gatewayHarness';
import { waitFor } from './waitFor';

/** Two instances on one Redis: pool.reload on one takes a leaked key out of rotation on both. */

const KEY_1 = 'sk-test-broadcast-key-one-0000000001';
const KEY_2 = 'sk-test-broadcast-key-two-0000000002';

let mock: MockProvider;
let a: TestGateway;
let b: TestGateway;
let dir: string;
let envFile: string;

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'keyrack-broadcast-'));
  envFile = join(dir, '.env');
  writeFileSync(envFile, `OPENAI_API_KEY_1=${KEY_1}\nOPENAI_API_KEY_2=${KEY_2}\n`);
  const base = { OPENAI_BASE_URL: mock.baseUrls.openai, ENV_FILE: envFile, REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `broadcast-${process.pid}-${Date.now()}` };
  const start = () =>
    startTestGateway({
      env: { ...base, OPENAI_API_KEY_1: KEY_1, OPENAI_API_KEY_2: KEY_2 },
      baseEnv: { ...base, PORT: '0', HOST: '127.0.0.1', MOCK_PROVIDER_PORT: '0', JWT_SECRET: TEST_JWT_SECRET },
    });
  [a, b] = await Promise.all([start(), start()]);
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await mock?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('reload across instances', () => {
  it('a reload told to one instance applies on the other through Redis pub/sub', async () => {
    const masksOf = async (gw: TestGateway) => (await gw.gateway.pool.status()).providers.find((p) => p.provider === 'openai')!.keys.map((k) => k.mask);
    expect(await masksOf(b)).toHaveLength(2);
    writeFileSync(envFile, `OPENAI_API_KEY_2=${KEY_2}\n`);
    const admin = a.trpc(await a.token('ops', 'admin'));
    expect((await admin.pool.reload.mutate()).ok).toBe(true);
    expect(await masksOf(a)).toEqual(['sk-…0002']);
    await waitFor(async () => (await masksOf(b)).length === 1, 'the other instance to reload', 5_000);
    expect(await masksOf(b)).toEqual(['sk-…0002']);
    const user = b.trpc(await b.token('after-rotation'));
    await user.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
    expect(mock.statsFor(KEY_1).total.requests).toBe(0);
  });
});
