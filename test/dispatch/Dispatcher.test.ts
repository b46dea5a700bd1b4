import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderId, StreamEvent } from '../../shared';
import type { ModelCatalog, ResolvedModel } from '../../server/business/types';
import { Dispatcher, type DispatcherDeps } from '../../server/dispatch/Dispatcher';
import type { AcquireResult, DispatchKeyPool, KeyLease, LeaseOutcome } from '../../server/dispatch/types';
import { silentLogger } from '../../server/observability/logger';
import { createAdapters } from '../../server/providers/createAdapters';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';

/**
 * The dispatcher over real HTTP on loopback, against a small OpenAI-shaped upstream whose
 * behaviour is chosen by the key it is called with, and a pool double that records reports.
 */

type Behaviour = 'ok' | '429' | 'quota' | '401' | '500' | '400' | 'cut' | 'hang';
const behaviourOf = (key: string): Behaviour => key.split('-')[2] as Behaviour;
const closed: string[] = [];
let hangStarted: () => void = () => {};

function handle(req: IncomingMessage, res: ServerResponse) {
  const key = (req.headers.authorization ?? '').replace('Bearer ', '');
  const json = (status: number, body: object, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const chunk = (text: string | null, finish: string | null = null) =>
    `data: ${JSON.stringify({ choices: [{ index: 0, delta: text === null ? {} : { content: text }, finish_reason: finish }] })}\n\n`;
  req.resume();
  req.on('end', () => {
    switch (behaviourOf(key)) {
      case '429':
        return json(429, { error: { message: 'Rate limit reached', code: 'rate_limit_exceeded' } }, { 'retry-after': '5' });
      case 'quota':
        return json(429, { error: { message: 'You exceeded your current quota', type: 'insufficient_quota', code: 'insufficient_quota' } });
      case '401':
        return json(401, { error: { message: `Incorrect API key provided: ${key}`, code: 'invalid_api_key' } });
      case '500':
        return json(500, { error: { message: 'The server had an error', type: 'server_error' } });
      case '400':
        return json(400, { error: { message: 'Invalid temperature', type: 'invalid_request_error', param: 'temperature' } });
      case 'cut':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(chunk('Hel'));
        setImmediate(() => res.socket?.destroy());
        return;
      case 'hang':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(chunk('Hel'));
        res.on('close', () => closed.push(key));
        hangStarted();
        return;
      default:
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': keep-alive\n\n');
        res.write(chunk('Hel'));
        res.write(chunk('lo'));
        res.write(chunk(null, 'stop'));
        res.write(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 2 } })}\n\n`);
        res.end('data: [DONE]\n\n');
    }
  });
}

const server = createServer(handle);
const upstream = new UpstreamHttp();
let baseUrl = '';

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  await upstream.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Round-robin over keys, skipping those reported rejected, rate-limited or out of quota. */
class RecordingPool implements DispatchKeyPool {
  readonly reports: { key: string; outcome: LeaseOutcome }[] = [];
  private readonly out = new Set<string>();
  private next = 0;
  constructor(private readonly keys: Partial<Record<ProviderId, string[]>>) {}
  async acquire(poolId: string): Promise<AcquireResult> {
    const keys = this.keys[poolId as ProviderId] ?? [];
    if (keys.length === 0) return { ok: false, reason: 'no_keys', retryAfterMs: null };
    for (let i = 0; i < keys.length; i++) {
      const secret = keys[(this.next + i) % keys.length] as string;
      if (this.out.has(secret)) continue;
      this.next = (this.next + i + 1) % keys.length;
      return { ok: true, lease: { poolId, provider: poolId as ProviderId, fingerprint: `fp-${behaviourOf(secret)}-${secret.slice(-1)}`, mask: 'sk-…', secret } };
    }
    return { ok: false, reason: 'busy', retryAfterMs: 4000 };
  }
  async report(lease: KeyLease, outcome: LeaseOutcome): Promise<void> {
    this.reports.push({ key: lease.secret, outcome });
    if (outcome.kind !== 'success' && outcome.kind !== 'transient') this.out.add(lease.secret);
  }
}

const MODELS: ResolvedModel[] = [
  { id: 'gpt-test', provider: 'openai', upstreamModel: 'gpt-test', displayName: 'GPT test', inputPrice: 1, outputPrice: 2, fallbacks: [], capabilities: { tools: true, vision: true, json_schema: true, reasoning: true } },
  { id: 'mistral-first', provider: 'mistral', upstreamModel: 'm', displayName: 'M', inputPrice: 1, outputPrice: 1, fallbacks: ['gpt-test'], capabilities: { tools: true, vision: true, json_schema: true, reasoning: true } },
];
const catalog: ModelCatalog = {
  resolve: async (name) => MODELS.find((m) => m.id === name || `${m.provider}/${m.id}` === name) ?? null,
  list: async () => MODELS,
};

function setup(keys: Partial<Record<ProviderId, string[]>>, deps: Partial<DispatcherDeps> = {}) {
  const pool = new RecordingPool(keys);
  const sleeps: number[] = [];
  const dispatcher = new Dispatcher({
    pool,
    catalog,
    adapters: createAdapters(upstream),
    baseUrls: { openai: baseUrl, mistral: baseUrl },
    maxAttempts: 3,
    deadlineMs: 30_000,
    logger: silentLogger,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...deps,
  });
  return { pool, dispatcher, sleeps };
}

async function run(dispatcher: Dispatcher, model = 'gpt-test', signal = new AbortController().signal): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of dispatcher.stream({ chat: { model, messages: [{ role: 'user', content: 'Hi' }] }, userId: 'u1', signal })) events.push(event);
  return events;
}

const ANSWER: StreamEvent[] = [
  { type: 'delta', text: 'Hel' },
  { type: 'delta', text: 'lo' },
  { type: 'usage', usage: { inputTokens: 7, outputTokens: 2, cachedInputTokens: 0, reasoningTokens: 0 } },
  { type: 'done', finishReason: 'stop' },
];

describe('Dispatcher', () => {
  it('streams start, deltas, usage, done and reports success with the tokens', async () => {
    const { dispatcher, pool } = setup({ openai: ['sk-test-ok-1'] });
    expect(await run(dispatcher)).toEqual([{ type: 'start', provider: 'openai', model: 'gpt-test', keyFingerprint: 'fp-ok-1' }, ...ANSWER]);
    expect(pool.reports).toEqual([{ key: 'sk-test-ok-1', outcome: { kind: 'success', tokens: 9 } }]);
  });

  it('holds the next event back while the sink asks it to wait (a full reader)', async () => {
    const { dispatcher } = setup({ openai: ['sk-test-ok-1'] });
    const seen: StreamEvent[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const running = dispatcher.run({ chat: { model: 'gpt-test', messages: [{ role: 'user', content: 'Hi' }] }, userId: 'u1', signal: new AbortController().signal }, (event) => {
      seen.push(event);
      return event.type === 'delta' && seen.length === 2 ? held : undefined;
    });
    await waitFor(() => seen.length >= 2);
    // The whole answer came in one read, so nothing but the wait keeps the next delta back.
    for (let turn = 0; turn < 20; turn += 1) await new Promise((resolve) => setImmediate(resolve));
    expect(seen.map((e) => e.type)).toEqual(['start', 'delta']);
    release();
    await running;
    expect(seen).toEqual([{ type: 'start', provider: 'openai', model: 'gpt-test', keyFingerprint: 'fp-ok-1' }, ...ANSWER]);
  });

  it('hands out the end of an answer without waiting for the pool to store the success', async () => {
    const { dispatcher, pool } = setup({ openai: ['sk-test-ok-1'] });
    // A store that never answers (Redis slow or away): the success is recorded, the answer ends.
    pool.report = (lease, outcome) => {
      pool.reports.push({ key: lease.secret, outcome });
      return new Promise<void>(() => {});
    };
    expect(await run(dispatcher)).toEqual([{ type: 'start', provider: 'openai', model: 'gpt-test', keyFingerprint: 'fp-ok-1' }, ...ANSWER]);
    expect(pool.reports).toEqual([{ key: 'sk-test-ok-1', outcome: { kind: 'success', tokens: 9 } }]);
  });

  it('rotates across keys', async () => {
    const { dispatcher } = setup({ openai: ['sk-test-ok-1', 'sk-test-ok-2'] });
    const first = (await run(dispatcher))[0];
    const second = (await run(dispatcher))[0];
    expect([first, second].map((e) => (e as { keyFingerprint: string }).keyFingerprint)).toEqual(['fp-ok-1', 'fp-ok-2']);
  });

  it('on 429 reports the retry-after against that key and serves from the next, with one start', async () => {
    const { dispatcher, pool, sleeps } = setup({ openai: ['sk-test-429-1', 'sk-test-ok-2'] });
    const events = await run(dispatcher);
    expect(events.filter((e) => e.type === 'start')).toEqual([{ type: 'start', provider: 'openai', model: 'gpt-test', keyFingerprint: 'fp-ok-2' }]);
    expect(events.slice(1)).toEqual(ANSWER);
    expect(pool.reports[0]).toEqual({ key: 'sk-test-429-1', outcome: { kind: 'rate_limited', retryAfterMs: 5000 } });
    expect(sleeps).toEqual([]);
  });

  it('reports insufficient_quota and 401 against their keys and moves on', async () => {
    const { dispatcher, pool } = setup({ openai: ['sk-test-quota-1', 'sk-test-401-2', 'sk-test-ok-3'] });
    expect((await run(dispatcher)).slice(1)).toEqual(ANSWER);
    expect(pool.reports.map((r) => r.outcome.kind)).toEqual(['quota_exhausted', 'rejected', 'success']);
  });

  it('retries a 5xx on another key after a jittered backoff', async () => {
    const { dispatcher, pool, sleeps } = setup({ openai: ['sk-test-500-1', 'sk-test-ok-2'] });
    expect((await run(dispatcher)).slice(1)).toEqual(ANSWER);
    expect(pool.reports[0]?.outcome).toEqual({ kind: 'transient' });
    expect(sleeps).toEqual([150]); // attempt 1: 200 ms base, half fixed + half × random(0.5)
  });

  it('gives up after maxAttempts with upstream_error', async () => {
    const { dispatcher, pool } = setup({ openai: ['sk-test-500-1', 'sk-test-500-2'] }, { maxAttempts: 2 });
    const events = await run(dispatcher);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'error', code: 'upstream_error' });
    expect(pool.reports).toHaveLength(2);
  });

  it('does not retry a bad request', async () => {
    const { dispatcher, pool } = setup({ openai: ['sk-test-400-1', 'sk-test-ok-2'] });
    const events = await run(dispatcher);
    // The gateway's own words and the field the provider named; its text stays in the logs (issue 24.5).
    expect(events).toEqual([{ type: 'error', code: 'bad_request', message: 'openai refused the request as invalid (field temperature)' }]);
    expect(pool.reports).toEqual([{ key: 'sk-test-400-1', outcome: { kind: 'transient' } }]);
  });

  it('ends a stream cut after the first delta with stream_interrupted, never retrying', async () => {
    const { dispatcher, pool } = setup({ openai: ['sk-test-cut-1', 'sk-test-ok-2'] });
    const events = await run(dispatcher);
    expect(events.map((e) => e.type)).toEqual(['start', 'delta', 'error']);
    expect(events[2]).toMatchObject({ type: 'error', code: 'stream_interrupted' });
    expect(pool.reports).toEqual([{ key: 'sk-test-cut-1', outcome: { kind: 'transient' } }]);
  });

  it('says rate_limited with retryAfterMs when every key is busy, quota_exhausted when all are out of quota', async () => {
    const busy = setup({ openai: ['sk-test-429-1'] });
    expect(await run(busy.dispatcher)).toEqual([{ type: 'error', code: 'rate_limited', message: expect.any(String), retryAfterMs: 4000 }]);
    const quota = setup({ openai: ['sk-test-quota-1'] });
    expect(await run(quota.dispatcher)).toMatchObject([{ type: 'error', code: 'quota_exhausted' }]);
    const none = setup({});
    expect(await run(none.dispatcher)).toMatchObject([{ type: 'error', code: 'no_keys' }]);
  });

  it('answers an unknown model with not_found', async () => {
    const { dispatcher } = setup({ openai: ['sk-test-ok-1'] });
    expect(await run(dispatcher, 'nope')).toMatchObject([{ type: 'error', code: 'not_found' }]);
  });

  it('falls back to the next model when a provider has no usable key', async () => {
    const { dispatcher } = setup({ openai: ['sk-test-ok-1'] });
    const events = await run(dispatcher, 'mistral-first');
    expect(events[0]).toEqual({ type: 'start', provider: 'openai', model: 'gpt-test', keyFingerprint: 'fp-ok-1' });
  });

  it('resolves fallback models only when the model before them failed', async () => {
    const resolved: string[] = [];
    const counting: ModelCatalog = { resolve: async (name) => (resolved.push(name), catalog.resolve(name)), list: catalog.list };
    const served = setup({ mistral: ['sk-test-ok-1'], openai: ['sk-test-ok-2'] }, { catalog: counting });
    expect((await run(served.dispatcher, 'mistral-first'))[0]).toMatchObject({ type: 'start', provider: 'mistral' });
    expect(resolved).toEqual(['mistral-first']);
    resolved.length = 0;
    const fellBack = setup({ openai: ['sk-test-ok-1'] }, { catalog: counting });
    expect((await run(fellBack.dispatcher, 'mistral-first'))[0]).toMatchObject({ type: 'start', provider: 'openai', model: 'gpt-test' });
    expect(resolved).toEqual(['mistral-first', 'gpt-test']);
  });

  it('closes the upstream connection when the caller aborts', async () => {
    const { dispatcher } = setup({ openai: ['sk-test-hang-1'] });
    const controller = new AbortController();
    const started = new Promise<void>((resolve) => (hangStarted = resolve));
    const events: StreamEvent[] = [];
    const done = (async () => {
      for await (const e of dispatcher.stream({ chat: { model: 'gpt-test', messages: [{ role: 'user', content: 'Hi' }] }, userId: 'u', signal: controller.signal })) events.push(e);
    })();
    await started;
    await new Promise<void>((resolve) => {
      const check = () => (events.some((e) => e.type === 'delta') ? resolve() : setImmediate(check));
      check();
    });
    controller.abort();
    await done;
    await waitFor(() => closed.includes('sk-test-hang-1'));
    expect(events.at(-1)).toEqual({ type: 'done', finishReason: 'aborted' });
  });

  it('closes the upstream connection when the consumer stops reading', async () => {
    const { dispatcher, pool } = setup({ openai: ['sk-test-hang-2'] });
    for await (const e of dispatcher.stream({ chat: { model: 'gpt-test', messages: [{ role: 'user', content: 'Hi' }] }, userId: 'u', signal: new AbortController().signal })) {
      if (e.type === 'delta') break;
    }
    await waitFor(() => closed.includes('sk-test-hang-2'));
    expect(pool.reports).toEqual([{ key: 'sk-test-hang-2', outcome: { kind: 'transient' } }]);
  });

  it('a sink that throws stops the answer: run rejects with its error, the upstream is closed, the key is not blamed', async () => {
    const { dispatcher, pool } = setup({ openai: ['sk-test-hang-3'] });
    const broken = new Error('the reader broke');
    const seen: StreamEvent['type'][] = [];
    const outcome = await dispatcher
      .run({ chat: { model: 'gpt-test', messages: [{ role: 'user', content: 'Hi' }] }, userId: 'u', signal: new AbortController().signal }, (event) => {
        seen.push(event.type);
        if (event.type === 'delta') throw broken;
      })
      .catch((error: unknown) => error);
    expect(outcome).toBe(broken);
    // No retry on another key, nothing after the failing event.
    expect(seen).toEqual(['start', 'delta']);
    await waitFor(() => closed.includes('sk-test-hang-3'));
    expect(pool.reports).toEqual([{ key: 'sk-test-hang-3', outcome: { kind: 'transient' } }]);
  });
});

/** Waits on the event loop (not a timer) until the condition holds. */
async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}
