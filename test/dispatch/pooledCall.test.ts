import { describe, expect, it } from 'vitest';
import type { ProviderId } from '../../shared';
import type { ModelCatalog, ResolvedModel } from '../../server/business/types';
import { Dispatcher } from '../../server/dispatch/Dispatcher';
import type { PooledAttempt } from '../../server/dispatch/pooledCall';
import type { AcquireResult, DispatchKeyPool, KeyLease, LeaseOutcome } from '../../server/dispatch/types';
import { silentLogger } from '../../server/observability/logger';
import { classifyUpstreamError } from '../../server/providers/http/postUpstream';
import { ProviderError } from '../../server/providers/ProviderError';

/**
 * issue 21: the Dispatcher's generic pooled call (Dispatcher.call), the core that embeddings,
 * messages and responses are served through: the same key leasing, outcome reports, retries on
 * another key and refusals as chat, around an attempt the endpoint writes.
 */

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
      return { ok: true, lease: { poolId, provider: poolId as ProviderId, fingerprint: `fp-${secret.slice(-1)}`, mask: 'sk-…', secret } };
    }
    return { ok: false, reason: 'busy', retryAfterMs: 4000 };
  }
  async report(lease: KeyLease, outcome: LeaseOutcome): Promise<void> {
    this.reports.push({ key: lease.secret, outcome });
    if (outcome.kind !== 'success' && outcome.kind !== 'transient') this.out.add(lease.secret);
  }
}

const CAPS = { tools: false, vision: false, json_schema: false, reasoning: false };
const MODELS: ResolvedModel[] = [
  { id: 'embed-test', provider: 'openai', upstreamModel: 'text-embedding-3-small', displayName: 'E', inputPrice: 0.02, outputPrice: 0, fallbacks: [], capabilities: CAPS, kind: 'embedding' },
  { id: 'chat-test', provider: 'openai', upstreamModel: 'gpt-test', displayName: 'C', inputPrice: 1, outputPrice: 2, fallbacks: [], capabilities: CAPS },
];
const catalog: ModelCatalog = { resolve: async (name) => MODELS.find((m) => m.id === name) ?? null, list: async () => MODELS };

function setup(keys: string[]) {
  const pool = new RecordingPool({ openai: keys });
  const dispatcher = new Dispatcher({ pool, catalog, adapters: {}, baseUrls: { openai: 'http://127.0.0.1:9/v1' }, logger: silentLogger, sleep: async () => {}, random: () => 0.5 });
  return { pool, dispatcher };
}

const rateLimited = (apiKey: string) =>
  classifyUpstreamError('openai', { status: 429, headers: new Headers({ 'retry-after': '7' }), bodyText: JSON.stringify({ error: { message: `slow down ${apiKey}`, code: 'rate_limit_exceeded' } }), apiKey, now: 0 });

const USAGE = { inputTokens: 5, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0 };

describe('issue 21: pooled calls through the key pools (Dispatcher.call)', () => {
  it('a 429 on one key is reported with its Retry-After and the next key serves; success reports the tokens', async () => {
    const { pool, dispatcher } = setup(['sk-test-a', 'sk-test-b']);
    const seen: PooledAttempt[] = [];
    const result = await dispatcher.call({
      model: 'embed-test',
      kind: 'embedding',
      userId: 'u1',
      signal: new AbortController().signal,
      requestId: 'req-1',
      attempt: async (attempt) => {
        seen.push(attempt);
        if (attempt.ctx.apiKey === 'sk-test-a') throw rateLimited(attempt.ctx.apiKey);
        return { value: 'vectors', usage: USAGE };
      },
    });
    expect(result).toMatchObject({ ok: true, value: 'vectors', usage: USAGE, keyFingerprint: 'fp-b', model: { id: 'embed-test' } });
    expect(seen.map((a) => [a.ctx.baseUrl, a.model.upstreamModel])).toEqual([
      ['http://127.0.0.1:9/v1', 'text-embedding-3-small'],
      ['http://127.0.0.1:9/v1', 'text-embedding-3-small'],
    ]);
    expect(pool.reports).toEqual([
      { key: 'sk-test-a', outcome: { kind: 'rate_limited', retryAfterMs: 7000 } },
      { key: 'sk-test-b', outcome: { kind: 'success', tokens: 5 } },
    ]);
  });

  it('every key limited: a rate_limited refusal with the soonest retry, naming the request id', async () => {
    const { dispatcher } = setup(['sk-test-a']);
    const result = await dispatcher.call({ model: 'embed-test', kind: 'embedding', userId: 'u1', signal: new AbortController().signal, requestId: 'req-2', attempt: async (a) => Promise.reject(rateLimited(a.ctx.apiKey)) });
    expect(result).toMatchObject({ ok: false, code: 'rate_limited', retryAfterMs: 4000, started: false });
    if (!result.ok) expect(result.message).toContain('req-2');
  });

  it('a failure after started() is final (stream_interrupted), never retried on another key', async () => {
    const { pool, dispatcher } = setup(['sk-test-a', 'sk-test-b']);
    let attempts = 0;
    const result = await dispatcher.call({
      model: 'embed-test',
      kind: 'embedding',
      userId: 'u1',
      signal: new AbortController().signal,
      attempt: async (a) => {
        attempts += 1;
        a.started();
        throw new ProviderError({ kind: 'transient', message: 'cut', providerCode: 'truncated' });
      },
    });
    expect(attempts).toBe(1);
    expect(result).toMatchObject({ ok: false, code: 'stream_interrupted', started: true });
    expect(pool.reports).toEqual([{ key: 'sk-test-a', outcome: { kind: 'transient' } }]);
  });

  it('a bad request is not the key\'s fault and not retried; the provider\'s param is named', async () => {
    const { pool, dispatcher } = setup(['sk-test-a', 'sk-test-b']);
    const result = await dispatcher.call({
      model: 'embed-test',
      kind: 'embedding',
      userId: 'u1',
      signal: new AbortController().signal,
      attempt: async (a) => {
        throw classifyUpstreamError('openai', { status: 400, headers: new Headers(), bodyText: JSON.stringify({ error: { message: 'bad', type: 'invalid_request_error', param: 'dimensions' } }), apiKey: a.ctx.apiKey, now: 0 });
      },
    });
    expect(result).toMatchObject({ ok: false, code: 'bad_request', message: 'openai refused the request as invalid (field dimensions)' });
    expect(pool.reports).toEqual([{ key: 'sk-test-a', outcome: { kind: 'transient' } }]);
  });

  it('refuses before leasing a key: unknown model, a model of the other kind, an unsupported provider', async () => {
    const { pool, dispatcher } = setup(['sk-test-a']);
    const attempt = async () => ({ value: null, usage: null });
    const base = { userId: 'u1', signal: new AbortController().signal, attempt };
    expect(await dispatcher.call({ ...base, model: 'nope', kind: 'embedding' })).toMatchObject({ ok: false, code: 'not_found' });
    expect(await dispatcher.call({ ...base, model: 'chat-test', kind: 'embedding' })).toMatchObject({ ok: false, code: 'bad_request', message: 'chat-test is a chat model and cannot serve embeddings (field model)' });
    expect(await dispatcher.call({ ...base, model: 'embed-test', kind: 'chat' })).toMatchObject({ ok: false, code: 'bad_request', message: 'embed-test is an embedding model and cannot serve chat completions (field model)' });
    expect(await dispatcher.call({ ...base, model: 'embed-test', kind: 'embedding', unsupported: () => 'openai has no such API' })).toMatchObject({ ok: false, code: 'bad_request', message: 'openai has no such API (field model)' });
    expect(pool.reports).toEqual([]);
  });

  it('chat refuses an embedding model with a 400 naming model', async () => {
    const { dispatcher } = setup(['sk-test-a']);
    const events = [];
    for await (const e of dispatcher.stream({ chat: { model: 'embed-test', messages: [{ role: 'user', content: 'hi' }] }, userId: 'u1', signal: new AbortController().signal })) events.push(e);
    expect(events).toEqual([{ type: 'error', code: 'bad_request', message: 'embed-test is an embedding model and cannot serve chat completions (field model)' }]);
  });

  it('the caller aborting stops the call without blaming the key', async () => {
    const { pool, dispatcher } = setup(['sk-test-a', 'sk-test-b']);
    const controller = new AbortController();
    const result = await dispatcher.call({
      model: 'embed-test',
      kind: 'embedding',
      userId: 'u1',
      signal: controller.signal,
      attempt: async () => {
        controller.abort();
        throw new ProviderError({ kind: 'transient', message: 'request aborted', providerCode: 'aborted' });
      },
    });
    expect(result).toMatchObject({ ok: false, started: false });
    expect(pool.reports).toEqual([{ key: 'sk-test-a', outcome: { kind: 'transient' } }]);
  });
});
