import { TRPCClientError } from '@trpc/client';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StreamEvent } from '../../shared';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { createLogger } from '../../server/observability/logger';
import { startTestGateway, TEST_JWT_SECRET, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue 22: the whole workload on a Redis Cluster. Two gateway instances with REDIS_URL naming
 * the run's local 3-master cluster do everything that writes to Redis (the key pool and its
 * learned limits, the chat streams' durable copy, usage, BYOK records, business config, user
 * limits, the reload broadcast, the instance registry), and it all works: every multi-key step
 * stays in one slot. Nothing either instance logged, at debug level, is a CROSSSLOT refusal,
 * ioredis' "All keys in the pipeline should belong to the same slot", or a MOVED redirection
 * error; and neither instance fell back to its in-process pool store.
 */

const KEY_1 = 'sk-test-cluster-workload-key-000001';
const KEY_2 = 'sk-test-cluster-workload-key-000002';
const BYOK_KEY = 'sk-test-cluster-workload-byok-a1b2c3d4';
const ENCRYPTION_KEY = 'cd'.repeat(32);
/** Redis' CROSSSLOT and MOVED replies and ioredis' own refusal of a pipeline over several slots. */
const SLOT_ERRORS = /CROSSSLOT|\bMOVED \d+|\bASK \d+|should belong to the same slot|don't hash to the same slot/;

const logLines: string[] = [];
const logger = () => createLogger({ level: 'debug', destination: { write: (line: string) => void logLines.push(line) } });

let mock: MockProvider;
let dir: string;
let envFile: string;
let a: TestGateway;
let b: TestGateway;

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'keyrack-cluster-workload-'));
  envFile = join(dir, '.env');
  writeFileSync(envFile, `OPENAI_API_KEY_1=${KEY_1}\nOPENAI_API_KEY_2=${KEY_2}\n`);
  const base = {
    OPENAI_BASE_URL: mock.baseUrls.openai,
    ENV_FILE: envFile,
    REDIS_URL: inject('redisClusterUrl'),
    REDIS_PREFIX: `cluster-workload-${process.pid}-${Date.now()}`,
    ENCRYPTION_KEY,
    SHUTDOWN_GRACE_MS: '0',
  };
  const start = () =>
    startTestGateway({
      env: { ...base, OPENAI_API_KEY_1: KEY_1, OPENAI_API_KEY_2: KEY_2 },
      baseEnv: { ...base, PORT: '0', HOST: '127.0.0.1', MOCK_PROVIDER_PORT: '0', JWT_SECRET: TEST_JWT_SECRET },
      logger: logger(),
      streams: { detachGraceMs: 60_000 },
    });
  [a, b] = await Promise.all([start(), start()]);
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await mock?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  // Closing wrote too (the last usage, the instance registry): checked after it.
  expect(logLines.filter((line) => SLOT_ERRORS.test(line))).toEqual([]);
});

async function refusal(promise: Promise<unknown>): Promise<{ message: string; data?: { code?: string } | null }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TRPCClientError) return error as never;
    throw error;
  }
  throw new Error('expected a refusal');
}

function collect(gw: TestGateway, token: string, input: { streamId: string; lastEventId?: string }): Promise<{ id: string; event: StreamEvent }[]> {
  const items: { id: string; event: StreamEvent }[] = [];
  return new Promise((resolve, reject) => {
    gw.trpc(token).chat.stream.subscribe(input, { onData: (t) => items.push({ id: t.id, event: t.data }), onError: reject, onComplete: () => resolve(items) });
  });
}

const text = (items: { event: StreamEvent }[]) => items.map((i) => (i.event.type === 'delta' ? i.event.text : '')).join('');
const upstream = () => mock.stats().total.requests;

describe('issue 22: the whole workload on a Redis Cluster, two instances', () => {
  it('/v1 chat, whole and streamed, on both instances', async () => {
    const token = await a.token('v1-user');
    const whole = await a.openai(token).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'whole on a cluster' }] });
    expect(whole.choices[0]!.message.content).toMatch(/^Mock answer to: whole on a cluster/);
    const stream = await b.openai(token).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'streamed on a cluster' }], stream: true, stream_options: { include_usage: true } });
    let streamed = '';
    let usage: unknown = null;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(streamed).toMatch(/^Mock answer to: streamed on a cluster/);
    expect(usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number) });
  });

  it('tRPC chat.start and chat.stream on one instance, a resume on the other after lastEventId, one upstream call', async () => {
    const token = await a.token('trpc-user');
    const before = upstream();
    const { streamId } = await a.trpc(token).chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'resumed across a cluster' }] });
    const local = await collect(a, token, { streamId });
    expect(local.at(-1)?.event).toEqual({ type: 'done', finishReason: 'stop' });
    expect(text(local)).toMatch(/^Mock answer to: resumed across a cluster/);
    const resumed = await collect(b, token, { streamId, lastEventId: '1' });
    expect(resumed.map((i) => i.id)).toEqual(local.slice(1).map((i) => i.id));
    expect(resumed.map((i) => i.event)).toEqual(local.slice(1).map((i) => i.event));
    expect(upstream()).toBe(before + 1);
    // Owner-checked on the other instance too.
    const denied = await refusal(collect(b, await b.token('mallory'), { streamId }));
    expect(denied.data?.code).toBe('NOT_FOUND');
  });

  it('embeddings over /v1 and tRPC', async () => {
    const token = await b.token('embed-user');
    const answer = await b.openai(token).embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'], encoding_format: 'float' });
    expect(answer.data.map((d) => d.embedding.length)).toEqual([1536, 1536]);
    const viaTrpc = await a.trpc(token).embeddings.create.mutate({ model: 'text-embedding-3-small', input: 'gamma' });
    expect(viaTrpc).toMatchObject({ model: 'text-embedding-3-small' });
  });

  it('usage read back on the other instance, per user and for the admin', async () => {
    const token = await a.token('usage-user');
    await a.trpc(token).chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'count me' }] });
    await b.trpc(token).chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'count me too' }] });
    // Usage is written behind (UsageLedger.writeBehindMs): both instances' shortly.
    await expect.poll(async () => (await b.trpc(token).usage.mine.query()).requests).toBe(2);
    const mine = await a.trpc(token).usage.mine.query();
    expect(mine.inputTokens).toBeGreaterThan(0);
    const byUser = await b.trpc(await b.token('root', 'admin')).usage.byUser.query();
    expect(byUser.find((u) => u.userId === 'usage-user')?.requests).toBe(2);
  });

  it('BYOK: added on one instance, listed and used on the other, removed', async () => {
    const ownerA = a.trpc(await a.token('byok-user'));
    const ownerB = b.trpc(await b.token('byok-user'));
    const added = await ownerA.byok.add.mutate({ provider: 'openai', apiKey: BYOK_KEY, label: 'cluster' });
    expect(await ownerB.byok.list.query()).toEqual([expect.objectContaining({ id: added.id, mask: 'sk-…c3d4' })]);
    expect(await ownerB.byok.test.mutate({ id: added.id })).toEqual({ result: 'valid' });
    const before = mock.statsFor(BYOK_KEY).total.requests;
    await ownerB.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'my own key' }] });
    expect(mock.statsFor(BYOK_KEY).total.requests).toBe(before + 1);
    await ownerB.byok.setSettings.mutate({ fallbackToSharedPool: true });
    await ownerB.byok.remove.mutate({ id: added.id });
    expect(await ownerA.byok.list.query()).toEqual([]);
  });

  it('business config set on one instance applies on the other; a model switched off there too', async () => {
    const adminA = a.trpc(await a.token('root', 'admin'));
    const adminB = b.trpc(await b.token('root', 'admin'));
    await adminA.config.set.mutate({ key: 'prompt_soft_limit', value: 2 });
    await adminA.config.set.mutate({ key: 'prompt_hard_limit', value: 3 });
    try {
      await expect.poll(async () => (await adminB.config.get.query()).settings.prompt_hard_limit).toBe(3);
      const error = await refusal(b.trpc(await b.token('config-user')).chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one two three four five six' }] }));
      expect(error.data?.code).toBe('BAD_REQUEST');
    } finally {
      await adminA.config.set.mutate({ key: 'prompt_hard_limit', value: 10_000 });
      await adminA.config.set.mutate({ key: 'prompt_soft_limit', value: 5_000 });
    }
    await adminA.models.setActive.mutate({ id: 'gpt-4.1', is_active: false });
    try {
      await expect.poll(async () => (await b.trpc(await b.token('config-user')).models.list.query()).some((m) => m.id === 'gpt-4.1')).toBe(false);
    } finally {
      await adminA.models.setActive.mutate({ id: 'gpt-4.1', is_active: true });
    }
  });

  it('pool.reload on one instance reloads the other (broadcast); pool.status on both', async () => {
    const masksOf = async (gw: TestGateway) => (await gw.trpc(await gw.token('root', 'admin')).pool.status.query()).providers.find((p) => p.provider === 'openai')!.keys.map((k) => k.mask);
    expect(await masksOf(b)).toHaveLength(2);
    writeFileSync(envFile, `OPENAI_API_KEY_2=${KEY_2}\n`);
    try {
      expect((await a.trpc(await a.token('ops', 'admin')).pool.reload.mutate()).ok).toBe(true);
      expect(await masksOf(a)).toEqual(['sk-…0002']);
      await expect.poll(() => masksOf(b)).toEqual(['sk-…0002']);
      const status = await b.trpc(await b.token('root', 'admin')).pool.status.query();
      const openai = status.providers.find((p) => p.provider === 'openai')!;
      // The requests of the tests before, counted in the shared windows.
      expect(openai.keys[0]!.requestsThisWindow).toBeGreaterThan(0);
    } finally {
      writeFileSync(envFile, `OPENAI_API_KEY_1=${KEY_1}\nOPENAI_API_KEY_2=${KEY_2}\n`);
      await a.trpc(await a.token('ops', 'admin')).pool.reload.mutate();
      await expect.poll(() => masksOf(b)).toHaveLength(2);
    }
  });

  it('user limits set on one instance: one RPM window for both', async () => {
    await a.trpc(await a.token('root', 'admin')).users.setLimits.mutate({ userId: 'limited-user', limits: { rpm: 2, weight: 2 } });
    expect(await b.trpc(await b.token('root', 'admin')).users.limits.query({ userId: 'limited-user' })).toMatchObject({ rpm: 2, weight: 2 });
    const token = await a.token('limited-user');
    await a.trpc(token).chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one' }] });
    await b.trpc(token).chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'two' }] });
    const before = upstream();
    const error = await refusal(a.trpc(token).chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'three' }] }));
    expect(error.data?.code).toBe('TOO_MANY_REQUESTS');
    expect(upstream()).toBe(before);
  });

  it('both instances stayed on Redis: ready, not degraded, and no slot error logged so far', async () => {
    for (const gw of [a, b]) {
      expect(gw.gateway.resilientStore?.isDegraded()).toBe(false);
      expect(await (await fetch(`${gw.url}/readyz`)).json()).toEqual({ ok: true, checks: { store: 'ok', providers: 'ok' } });
    }
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.filter((line) => SLOT_ERRORS.test(line))).toEqual([]);
  });
});
