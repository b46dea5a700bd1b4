import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { KeyStatus, ProviderId, StreamEvent } from '../../shared';
import type { ModelCatalog, ResolvedModel } from '../../server/business/types';
import { Dispatcher } from '../../server/dispatch/Dispatcher';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import type { MockProviderName } from '../../server/mock-provider/mockFault';
import { createLogger } from '../../server/observability/logger';
import { fingerprintOf } from '../../server/pool/keyIdentity';
import { KeyPool } from '../../server/pool/KeyPool';
import { createMemoryStore } from '../../server/pool/stores/memoryStore';
import { createRedisStore } from '../../server/pool/stores/redisStore';
import type { PoolStore } from '../../server/pool/types';
import { createAdapters } from '../../server/providers/createAdapters';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';

/**
 * The dispatcher with every real part behind it: the mock provider over HTTP on 127.0.0.1 (all
 * three wire formats), the real KeyPool on the memory store (and once on Redis), the real
 * adapters. Faults are injected per key on the mock; what the mock saw is read from its stats.
 *
 * One fixed clock drives the mock, the pool store and the dispatcher, so cooldown ends are exact
 * and the RPM window never slides during a test.
 */

const NOW = 1_800_000_000_000;
const clock = () => NOW;

const MODELS: ResolvedModel[] = [
  { id: 'gpt-4o', provider: 'openai', upstreamModel: 'gpt-4o', displayName: 'GPT-4o', inputPrice: 2.5, outputPrice: 10, fallbacks: ['claude-sonnet-4'], capabilities: { tools: true, vision: true, json_schema: true, reasoning: true } },
  { id: 'claude-sonnet-4', provider: 'anthropic', upstreamModel: 'claude-sonnet-4-20250514', displayName: 'Claude Sonnet 4', inputPrice: 3, outputPrice: 15, fallbacks: [], capabilities: { tools: true, vision: true, json_schema: true, reasoning: true } },
  { id: 'gemini-2.5-flash', provider: 'google', upstreamModel: 'gemini-2.5-flash', displayName: 'Gemini 2.5 Flash', inputPrice: 0.3, outputPrice: 2.5, fallbacks: [], capabilities: { tools: true, vision: true, json_schema: true, reasoning: true } },
];
const catalog: ModelCatalog = {
  resolve: async (name) => MODELS.find((m) => m.id === name || `${m.provider}/${m.id}` === name) ?? null,
  list: async () => MODELS,
};

const WIRES = [
  { provider: 'openai', wire: 'openai', model: 'gpt-4o' },
  { provider: 'anthropic', wire: 'anthropic', model: 'claude-sonnet-4' },
  { provider: 'google', wire: 'gemini', model: 'gemini-2.5-flash' },
] as const satisfies readonly { provider: ProviderId; wire: MockProviderName; model: string }[];

/** Everything the file produced that a secret must never reach. */
const secrets: string[] = [];
const logLines: string[] = [];
const allEvents: StreamEvent[] = [];
const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logLines.push(line) } });

let mock: MockProvider;
const http = new UpstreamHttp();
const adapters = createAdapters(http);
const redis = new Redis(inject('redisUrl'), { lazyConnect: true });

beforeAll(async () => {
  mock = await startMockProvider({ clock });
});
afterAll(async () => {
  await http.close();
  await mock.close();
  redis.disconnect();
});

/** Obviously fake, unique per call, remembered for the leak check. */
function newKey(label: string): string {
  const key = `sk-test-${label}-${randomBytes(8).toString('hex')}`;
  secrets.push(key);
  return key;
}

interface Setup {
  pool: KeyPool;
  dispatcher: Dispatcher;
  sleeps: number[];
}

function setup(pools: Partial<Record<ProviderId, { keys: string[]; rpm?: number }>>, store: PoolStore = createMemoryStore({ clock })): Setup {
  const pool = new KeyPool(store, { logger });
  pool.setPools(
    Object.entries(pools).map(([provider, p]) => ({
      id: provider,
      provider: provider as ProviderId,
      strategy: 'round-robin' as const,
      rpm: p.rpm ?? 0,
      tpm: 0,
      keys: p.keys.map((secret) => ({ secret, account: null })),
    })),
  );
  const sleeps: number[] = [];
  const dispatcher = new Dispatcher({
    pool,
    catalog,
    adapters,
    baseUrls: { openai: mock.baseUrls.openai, anthropic: mock.baseUrls.anthropic, google: mock.baseUrls.gemini },
    maxAttempts: 3,
    deadlineMs: 30_000,
    logger,
    clock,
    random: () => 0.5,
    // Zero backoff: record the wait the dispatcher asked for instead of waiting.
    sleep: async (ms) => void sleeps.push(ms),
  });
  return { pool, dispatcher, sleeps };
}

const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'Hello there' }] });

async function run(dispatcher: Dispatcher, model: string): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of dispatcher.stream({ chat: chat(model), userId: 'u1', signal: new AbortController().signal })) events.push(event);
  allEvents.push(...events);
  return events;
}

const textOf = (events: StreamEvent[]) => events.map((e) => (e.type === 'delta' ? e.text : '')).join('');
const starts = (events: StreamEvent[]) => events.filter((e) => e.type === 'start');
/** The mock's answer to "Hello there": the echo plus four filler words. */
const FULL_ANSWER = 'Mock answer to: Hello there and here is more';

async function keyStatus(pool: KeyPool, provider: ProviderId, key: string): Promise<KeyStatus> {
  const status = await pool.status();
  const found = status.providers.find((p) => p.provider === provider)?.keys.find((k) => k.fingerprint === fingerprintOf(key));
  if (!found) throw new Error(`no status for a ${provider} key`);
  return found;
}

const requestsOn = (key: string) => mock.statsFor(key).total.requests;

/** Asserts a whole answer served by `key`: one start, the full text, usage, done. */
function expectServedBy(events: StreamEvent[], provider: ProviderId, model: string, key: string) {
  expect(starts(events)).toEqual([{ type: 'start', provider, model, keyFingerprint: fingerprintOf(key) }]);
  expect(events[0]?.type).toBe('start');
  expect(textOf(events)).toBe(FULL_ANSWER);
  expect(events.find((e) => e.type === 'usage')).toMatchObject({ usage: { outputTokens: 9 } });
  expect(events.at(-1)).toEqual({ type: 'done', finishReason: 'stop' });
}

describe.each(WIRES)('dispatcher through the mock provider, $wire wire', ({ provider, wire, model }) => {
  it('rotates round-robin: three requests hit three different keys', async () => {
    const keys = [newKey('rr'), newKey('rr'), newKey('rr')];
    const { dispatcher } = setup({ [provider]: { keys } });
    const served: string[] = [];
    for (let i = 0; i < 3; i++) {
      const events = await run(dispatcher, model);
      expect(textOf(events)).toBe(FULL_ANSWER);
      served.push((starts(events)[0] as { keyFingerprint: string }).keyFingerprint);
    }
    expect(new Set(served)).toEqual(new Set(keys.map(fingerprintOf)));
    for (const key of keys) expect(mock.statsFor(key).byProvider[wire]?.requests).toBe(1);
  });

  it('cools exactly the key that got a 429 with retry-after, and serves from another before any text', async () => {
    const [limited, good, idle] = [newKey('429'), newKey('ok'), newKey('idle')];
    const { dispatcher, pool, sleeps } = setup({ [provider]: { keys: [limited, good, idle] } });
    mock.faults.inject(limited, { kind: 'rateLimit', retryAfterSeconds: 20 });
    const events = await run(dispatcher, model);
    // The failed attempt left no trace in the stream: the first event is the good key's start.
    expectServedBy(events, provider, model, good);
    expect(sleeps).toEqual([]);
    expect(requestsOn(limited)).toBe(1);
    expect(await keyStatus(pool, provider, limited)).toMatchObject({ status: 'cooling', reason: 'rate_limited', until: NOW + 20_000 });
    expect(await keyStatus(pool, provider, good)).toMatchObject({ status: 'ok', reason: null, until: null });
    expect(await keyStatus(pool, provider, idle)).toMatchObject({ status: 'ok', reason: null, until: null });
    // Regression: the failure was logged under `key` (which the logger redacts) and a second `msg`.
    const failed = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'upstream attempt failed' && l.fingerprint === fingerprintOf(limited));
    expect(failed).toMatchObject({ provider, kind: 'rate_limited', status: 429, started: false, detail: expect.stringContaining('429') });
  });

  it('does not retry an out-of-quota key and shows it quota_exhausted', async () => {
    const [broke, good] = [newKey('quota'), newKey('ok')];
    const { dispatcher, pool } = setup({ [provider]: { keys: [broke, good] } });
    mock.faults.inject(broke, { kind: 'quota' }, { sticky: true });
    expectServedBy(await run(dispatcher, model), provider, model, good);
    // A second request must not touch it either: the pool keeps it out.
    expectServedBy(await run(dispatcher, model), provider, model, good);
    expect(requestsOn(broke)).toBe(1);
    expect(await keyStatus(pool, provider, broke)).toMatchObject({ status: 'cooling', reason: 'quota_exhausted' });
    expect(await keyStatus(pool, provider, good)).toMatchObject({ status: 'ok' });
  });

  it('disables a rejected key and serves from another', async () => {
    const [bad, good] = [newKey('401'), newKey('ok')];
    const { dispatcher, pool } = setup({ [provider]: { keys: [bad, good] } });
    mock.faults.inject(bad, { kind: 'reject' }, { sticky: true });
    expectServedBy(await run(dispatcher, model), provider, model, good);
    expect(requestsOn(bad)).toBe(1);
    expect(await keyStatus(pool, provider, bad)).toMatchObject({ status: 'disabled', reason: 'rejected', until: null });
  });

  it('retries 5xx and overloaded (Anthropic 529) on other keys without blaming them', async () => {
    const [failing, overloaded, good] = [newKey('500'), newKey('529'), newKey('ok')];
    const { dispatcher, pool, sleeps } = setup({ [provider]: { keys: [failing, overloaded, good] } });
    mock.faults.inject(failing, { kind: 'serverError', status: 500 });
    mock.faults.inject(overloaded, { kind: 'overloaded' });
    const overloadedAnswer = mock.nextEvent('finished', { key: overloaded });
    expectServedBy(await run(dispatcher, model), provider, model, good);
    expect((await overloadedAnswer).status).toBe(wire === 'anthropic' ? 529 : 503);
    expect(sleeps).toHaveLength(2);
    expect([requestsOn(failing), requestsOn(overloaded), requestsOn(good)]).toEqual([1, 1, 1]);
    for (const key of [failing, overloaded, good]) expect(await keyStatus(pool, provider, key)).toMatchObject({ status: 'ok' });
  });

  it('ends a stream cut mid-way with stream_interrupted after the text received, never retrying', async () => {
    const [cut, spare] = [newKey('cut'), newKey('spare')];
    const { dispatcher } = setup({ [provider]: { keys: [cut, spare] } });
    mock.faults.inject(cut, { kind: 'cutStream', afterChunks: 2 });
    const events = await run(dispatcher, model);
    expect(events[0]).toEqual({ type: 'start', provider, model, keyFingerprint: fingerprintOf(cut) });
    expect(textOf(events)).toBe('Mock answer');
    expect(events.at(-1)).toMatchObject({ type: 'error', code: 'stream_interrupted' });
    expect(events.filter((e) => e.type === 'done' || e.type === 'error')).toHaveLength(1);
    expect([requestsOn(cut), requestsOn(spare)]).toEqual([1, 0]);
  });

  it('ends a stream with malformed SSE mid-way with an error event', async () => {
    const [garbled, spare] = [newKey('garbled'), newKey('spare')];
    const { dispatcher } = setup({ [provider]: { keys: [garbled, spare] } });
    mock.faults.inject(garbled, { kind: 'malformedSse', afterChunks: 2 });
    const events = await run(dispatcher, model);
    expect(textOf(events)).toBe('Mock answer');
    expect(events.at(-1)).toMatchObject({ type: 'error', code: 'stream_interrupted' });
    expect([requestsOn(garbled), requestsOn(spare)]).toEqual([1, 0]);
  });

  it("cancels the upstream request when the caller aborts after the first delta", async () => {
    const key = newKey('abort');
    const { dispatcher, pool } = setup({ [provider]: { keys: [key] } });
    mock.faults.inject(key, { kind: 'stall', afterChunks: 1 });
    const aborted = mock.nextEvent('aborted', { key });
    const controller = new AbortController();
    const events: StreamEvent[] = [];
    for await (const event of dispatcher.stream({ chat: chat(model), userId: 'u1', signal: controller.signal })) {
      events.push(event);
      if (event.type === 'delta') controller.abort();
    }
    allEvents.push(...events);
    expect(await aborted).toMatchObject({ provider: wire, fingerprint: fingerprintOf(key), status: 200 });
    expect(textOf(events)).toBe('Mock');
    expect(events.at(-1)).toEqual({ type: 'done', finishReason: 'aborted' });
    expect(mock.statsFor(key).total.aborted).toBe(1);
    // Leaving is not the key's fault.
    expect(await keyStatus(pool, provider, key)).toMatchObject({ status: 'ok' });
  });

  it('cancels the upstream request when the consumer breaks out of the loop', async () => {
    const key = newKey('break');
    const { dispatcher, pool } = setup({ [provider]: { keys: [key] } });
    mock.faults.inject(key, { kind: 'stall', afterChunks: 1 });
    const aborted = mock.nextEvent('aborted', { key });
    for await (const event of dispatcher.stream({ chat: chat(model), userId: 'u1', signal: new AbortController().signal })) {
      allEvents.push(event);
      if (event.type === 'delta') break;
    }
    expect(await aborted).toMatchObject({ fingerprint: fingerprintOf(key) });
    expect(await keyStatus(pool, provider, key)).toMatchObject({ status: 'ok' });
  });

  it('answers rate_limited with retryAfterMs when every key is busy, without calling upstream', async () => {
    const keys = [newKey('rpm'), newKey('rpm')];
    const { dispatcher } = setup({ [provider]: { keys, rpm: 1 } });
    expect(textOf(await run(dispatcher, model))).toBe(FULL_ANSWER);
    expect(textOf(await run(dispatcher, model))).toBe(FULL_ANSWER);
    const refused = await run(dispatcher, model);
    expect(refused).toEqual([{ type: 'error', code: 'rate_limited', message: expect.any(String), retryAfterMs: expect.any(Number) }]);
    expect((refused[0] as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    expect(keys.map(requestsOn)).toEqual([1, 1]);
  });
});

describe('fallback and shared state', () => {
  it('serves gpt-4o from its fallback claude-sonnet-4 when the whole openai pool is refused', async () => {
    const [openaiBusy, openaiBroke, anthropicKey] = [newKey('oa-busy'), newKey('oa-quota'), newKey('an-ok')];
    // One key already at its RPM limit, the other out of quota.
    const { dispatcher, pool } = setup({ openai: { keys: [openaiBusy, openaiBroke], rpm: 1 }, anthropic: { keys: [anthropicKey] } });
    mock.faults.inject(openaiBroke, { kind: 'quota' }, { sticky: true });
    expectServedBy(await run(dispatcher, 'gpt-4o'), 'openai', 'gpt-4o', openaiBusy);
    const events = await run(dispatcher, 'gpt-4o');
    expectServedBy(events, 'anthropic', 'claude-sonnet-4', anthropicKey);
    expect([requestsOn(openaiBusy), requestsOn(openaiBroke), requestsOn(anthropicKey)]).toEqual([1, 1, 1]);
    expect(await keyStatus(pool, 'openai', openaiBroke)).toMatchObject({ status: 'cooling', reason: 'quota_exhausted' });
    // Now nothing on openai is even tried: straight to the fallback.
    expectServedBy(await run(dispatcher, 'gpt-4o'), 'anthropic', 'claude-sonnet-4', anthropicKey);
    expect([requestsOn(openaiBusy), requestsOn(openaiBroke)]).toEqual([1, 1]);
  });

  it('on the Redis store, a 429 cools exactly that key and the request succeeds on another', async () => {
    await redis.connect();
    const store = createRedisStore({ redis, prefix: `test-dispatch-${randomUUID()}`, clock });
    const [limited, good] = [newKey('redis-429'), newKey('redis-ok')];
    const { dispatcher, pool } = setup({ openai: { keys: [limited, good] } }, store);
    mock.faults.inject(limited, { kind: 'rateLimit', retryAfterSeconds: 7 });
    expectServedBy(await run(dispatcher, 'gpt-4o'), 'openai', 'gpt-4o', good);
    expect(await keyStatus(pool, 'openai', limited)).toMatchObject({ status: 'cooling', reason: 'rate_limited', until: NOW + 7_000 });
    expect(await keyStatus(pool, 'openai', good)).toMatchObject({ status: 'ok', requestsThisWindow: 1 });
    // A second request skips the cooling key (state lives in Redis, not in this process).
    expectServedBy(await run(dispatcher, 'gpt-4o'), 'openai', 'gpt-4o', good);
    expect(requestsOn(limited)).toBe(1);
  });

  // Runs last in the file: scans everything the tests above produced.
  it('leaked no key secret into any event, error message or log line', () => {
    expect(secrets.length).toBeGreaterThan(40);
    expect(allEvents.some((e) => e.type === 'error')).toBe(true);
    expect(logLines.length).toBeGreaterThan(10);
    // One `msg` per line: a duplicate key would make the line ambiguous to log tooling.
    for (const line of logLines) expect(line.match(/"msg":/g)).toHaveLength(1);
    const haystack = [...allEvents.map((e) => JSON.stringify(e)), ...logLines].join('\n');
    for (const secret of secrets) {
      expect(haystack.includes(secret)).toBe(false);
      // Nor the random part alone (a mask shows at most the last few characters).
      expect(haystack.includes(secret.slice(-12))).toBe(false);
    }
  });
});
