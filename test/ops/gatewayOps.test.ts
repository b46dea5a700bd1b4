import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, TEST_JWT_SECRET, type TestGateway } from '../support/gatewayHarness';

/** Operations through a gateway with real (fake) keys: pool.reload from ENV_FILE, and /metrics. */

const KEY_1 = 'sk-test-ops-key-one-0000000000000001';
const KEY_2 = 'sk-test-ops-key-two-0000000000000002';
const METRICS_TOKEN = 'metrics-token-for-tests-000000';

let mock: MockProvider;
let gw: TestGateway;
let dir: string;
let envFile: string;

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'keyrack-ops-'));
  envFile = join(dir, '.env');
  writeFileSync(envFile, `OPENAI_API_KEY_1=${KEY_1}\nOPENAI_API_KEY_2=${KEY_2}\n`);
  const base = { OPENAI_BASE_URL: mock.baseUrls.openai, ENV_FILE: envFile, METRICS_TOKEN };
  gw = await startTestGateway({
    env: { ...base, OPENAI_API_KEY_1: KEY_1, OPENAI_API_KEY_2: KEY_2 },
    baseEnv: { ...base, PORT: '0', HOST: '127.0.0.1', MOCK_PROVIDER_PORT: '0', JWT_SECRET: TEST_JWT_SECRET },
  });
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('operations', () => {
  it('pool.reload applies a key removed from ENV_FILE; an invalid file changes nothing', async () => {
    const admin = gw.trpc(await gw.token('root', 'admin'));
    const keysOf = async () => (await admin.pool.status.query()).providers.find((p) => p.provider === 'openai')!.keys.map((k) => k.mask);
    expect(await keysOf()).toHaveLength(2);

    writeFileSync(envFile, `OPENAI_API_KEY_1=${KEY_1}\nOPENAI_RPM_PER_KEY=lots\n`);
    const bad = await admin.pool.reload.mutate();
    expect(bad.ok).toBe(false);
    expect(JSON.stringify(bad)).toContain('OPENAI_RPM_PER_KEY');
    expect(JSON.stringify(bad)).not.toContain('lots');
    expect(await keysOf()).toHaveLength(2);

    writeFileSync(envFile, `OPENAI_API_KEY_1=${KEY_1}\n`);
    const good = await admin.pool.reload.mutate();
    expect(good.ok).toBe(true);
    expect(await keysOf()).toEqual(['sk-…0001']);
    expect(JSON.stringify(good)).not.toContain(KEY_2);

    const user = gw.trpc(await gw.token('alice'));
    expect((await user.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'after reload' }] })).text).toContain('Mock answer');
    expect(mock.statsFor(KEY_2).total.requests).toBe(0);
    await expect(user.pool.reload.mutate()).rejects.toMatchObject({ data: { code: 'FORBIDDEN' } });
  });

  it('GET /metrics needs METRICS_TOKEN and exposes the gateway metrics without secrets', async () => {
    expect((await fetch(`${gw.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${gw.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-000000000000000' } })).status).toBe(401);
    const response = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(response.status).toBe(200);
    const text = await response.text();
    for (const name of ['keyrack_requests_total', 'keyrack_time_to_first_token_seconds', 'keyrack_tokens_total', 'keyrack_open_streams', 'keyrack_usage_outbox_entries', 'keyrack_store_latency_seconds', 'keyrack_upstream_latency_seconds', 'keyrack_keys_disabled', 'keyrack_keys_cooling', 'keyrack_process_nodejs_eventloop_lag_p99_seconds']) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/keyrack_requests_total\{provider="openai",model="[^"]+",status="ok"\} [1-9]/);
    expect(text).toMatch(/keyrack_upstream_latency_seconds_count\{provider="openai",outcome="success"\} [1-9]/);
    for (const secret of [KEY_1, KEY_2, TEST_JWT_SECRET, METRICS_TOKEN]) expect(text).not.toContain(secret);
  });
});
