import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import type { ProviderId, StreamEvent } from '../../shared';
import { TokenService } from '../../server/auth/tokens';
import { BusinessConfig } from '../../server/business/BusinessConfig';
import { checkPrompt } from '../../server/business/checkPrompt';
import { ByokVault } from '../../server/byok/ByokVault';
import type { DispatchRequest } from '../../server/dispatch/Dispatcher';
import type { GatewayContext, GatewayDeps } from '../../server/gateway/context';
import { createMeteredChatEngine } from '../../server/gateway/meteredChatEngine';
import { eventsOf, pushEach, type EventSink } from '../../server/streams/ChatEngine';
import { createCaller } from '../../server/gateway/router';
import { silentLogger } from '../../server/observability/logger';
import type { AcquireResult, KeyPool } from '../../server/pool/KeyPool';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { ChatStreams } from '../../server/streams/ChatStreams';
import { UsageLedger } from '../../server/usage/UsageLedger';

/**
 * Issue #5's procedures and the metered chat engine through createCaller: the real vault,
 * business config and ledger over a memory store, with a scripted upstream in place of the
 * dispatcher so usage figures (and so costs) are known by hand.
 */

const ALICE_KEY = 'sk-test-caller-alice-00112233445566778899';
const USAGE = { inputTokens: 1000, outputTokens: 500, cachedInputTokens: 0, reasoningTokens: 0 };

/** Stands in for the dispatcher: remembers each request, answers with a fixed script. */
class ScriptedUpstream {
  requests: DispatchRequest[] = [];
  /** Resolves when a script has been read to its end (by anyone). */
  private resolveFinished!: () => void;
  finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));
  /** Who answers: the requested model unless a test makes a fallback serve. */
  answeredBy: { provider: ProviderId; model: string } = { provider: 'openai', model: 'gpt-4o' };
  run(req: DispatchRequest, emit: EventSink): Promise<void> {
    return pushEach(this.stream(req), emit);
  }

  private async *stream(req: DispatchRequest): AsyncGenerator<StreamEvent> {
    this.requests.push(req);
    yield { type: 'start', ...this.answeredBy, keyFingerprint: 'f1' };
    yield { type: 'delta', text: 'Hello' };
    yield { type: 'usage', usage: USAGE };
    yield { type: 'done', finishReason: 'stop' };
    this.resolveFinished();
  }
}

async function setup() {
  const store = createMemoryDocStore();
  const business = new BusinessConfig({ store });
  await business.init();
  const vault = new ByokVault({ store, encryptionKey: Buffer.alloc(32, 7) });
  const ledger = new UsageLedger({ store, flushIntervalMs: null });
  const upstream = new ScriptedUpstream();
  const acquired: Parameters<KeyPool['acquireFrom']>[0][] = [];
  const pool = {
    acquireFrom: async (spec: Parameters<KeyPool['acquireFrom']>[0]): Promise<AcquireResult> => {
      acquired.push(spec);
      return { ok: false, reason: 'no_keys', retryAfterMs: null };
    },
  };
  const engine = createMeteredChatEngine({ inner: upstream, business, ledger, vault, pool, logger: silentLogger });
  const tested: [ProviderId, string][] = [];
  const deps: GatewayDeps = {
    engine,
    streams: new ChatStreams({ engine, logger: silentLogger }),
    catalog: business,
    pool: { status: async () => ({ at: 1, windowMs: 60_000, providers: [] }), setKeyEnabled: async () => false },
    tokens: new TokenService('issue5-caller-test-secret-issue5-caller-0123'),
    logger: silentLogger,
    domain: {
      business,
      vault,
      ledger,
      testKey: async (provider, apiKey) => {
        tested.push([provider, apiKey]);
        return apiKey === ALICE_KEY ? 'valid' : 'rejected';
      },
    },
  };
  const ctx = (id: string, role: 'user' | 'admin' = 'user'): GatewayContext => ({ deps, user: { id, role }, authRefusal: null, requestId: 'req' });
  return { store, upstream, acquired, tested, engine, ledger, alice: createCaller(ctx('alice')), bob: createCaller(ctx('bob')), admin: createCaller(ctx('root', 'admin')) };
}

const chat = (content = 'hello there') => ({ model: 'gpt-4o', messages: [{ role: 'user' as const, content }] });

async function refusal(promise: Promise<unknown>): Promise<TRPCError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TRPCError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('byok.* via createCaller', () => {
  it('round trip: add, list, test, settings, remove; only the mask ever comes back', async () => {
    const { alice, tested, store } = await setup();
    const added = await alice.byok.add({ provider: 'openai', apiKey: ALICE_KEY, label: 'work' });
    expect(added).toMatchObject({ provider: 'openai', label: 'work', mask: 'sk-…8899' });
    expect(Object.keys(added)).toEqual(expect.arrayContaining(['id', 'provider', 'label', 'mask', 'createdAt']));
    for (const field of ['apiKey', 'secret', 'sealed']) expect(added).not.toHaveProperty(field);
    const listed = await alice.byok.list();
    expect(listed).toEqual([expect.objectContaining({ id: added.id, mask: 'sk-…8899', status: 'ok' })]);
    expect(await alice.byok.test({ id: added.id })).toEqual({ result: 'valid' });
    expect(tested).toEqual([['openai', ALICE_KEY]]);
    expect(await alice.byok.settings()).toEqual({ fallbackToSharedPool: true });
    expect(await alice.byok.setSettings({ fallbackToSharedPool: false })).toEqual({ fallbackToSharedPool: false });
    for (const answer of [added, listed, await alice.byok.settings()]) expect(JSON.stringify(answer)).not.toContain(ALICE_KEY);
    expect(store.dump().join('\n')).not.toContain(ALICE_KEY);
    await alice.byok.remove({ id: added.id });
    expect(await alice.byok.list()).toEqual([]);
    expect((await refusal(alice.byok.test({ id: added.id }))).code).toBe('NOT_FOUND');
  });

  it("another user's key is NOT_FOUND everywhere and never offered to their requests", async () => {
    const { alice, bob, tested, upstream } = await setup();
    const { id } = await alice.byok.add({ provider: 'openai', apiKey: ALICE_KEY });
    expect(await bob.byok.list()).toEqual([]);
    expect((await refusal(bob.byok.test({ id }))).code).toBe('NOT_FOUND');
    expect((await refusal(bob.byok.remove({ id }))).code).toBe('NOT_FOUND');
    expect(tested).toEqual([]);
    await bob.chat.complete(chat());
    expect(upstream.requests[0]!.keySources ?? []).toEqual([]);
    expect(await alice.byok.list()).toHaveLength(1);
  });

  it("routes the owner's requests through their own pool first, and keeps them off the shared pool when they say so", async () => {
    const { alice, upstream, acquired } = await setup();
    await alice.byok.add({ provider: 'openai', apiKey: ALICE_KEY });
    await alice.chat.complete(chat());
    const req = upstream.requests[0]!;
    expect(req.useSharedPool?.('openai')).toBe(true);
    await req.keySources![0]!('openai');
    expect(acquired).toEqual([expect.objectContaining({ provider: 'openai', strategy: 'round-robin', keys: [{ secret: ALICE_KEY, account: null }] })]);
    expect(acquired[0]!.id).toMatch(/^byok:[0-9a-f]+:openai$/);
    expect(acquired[0]!.id).not.toContain('alice');
    // No keys for another provider: that provider's shared pool stays open either way.
    expect(await req.keySources![0]!('anthropic')).toMatchObject({ ok: false, reason: 'no_keys' });

    await alice.byok.setSettings({ fallbackToSharedPool: false });
    await alice.chat.complete(chat());
    expect(upstream.requests[1]!.useSharedPool?.('openai')).toBe(false);
    expect(upstream.requests[1]!.useSharedPool?.('anthropic')).toBe(true);
  });

  it('maps invalid input to BAD_REQUEST without echoing the key', async () => {
    const { alice } = await setup();
    const error = await refusal(alice.byok.add({ provider: 'nope' as 'openai', apiKey: ALICE_KEY }));
    expect(error.code).toBe('BAD_REQUEST');
    expect(error.message).not.toContain(ALICE_KEY);
  });
});

describe('admin procedures via createCaller', () => {
  it('are FORBIDDEN to users', async () => {
    const { alice } = await setup();
    const calls = [
      alice.config.get(),
      alice.config.set({ key: 'markup_percentage', value: 0 }),
      alice.models.upsert({ id: 'mine', provider: 'openai', display_name: 'Mine', input_price: 0, output_price: 0, is_active: true }),
      alice.models.setActive({ id: 'gpt-4o', is_active: false }),
      alice.usage.byUser(),
      alice.users.setLimits({ userId: 'alice', limits: { rpm: 1000 } }),
    ];
    for (const call of calls) expect((await refusal(call)).code).toBe('FORBIDDEN');
  });

  it('refuse key-shaped values with BAD_REQUEST and never echo them', async () => {
    const { admin } = await setup();
    const secret = 'sk-proj-' + 'abcdefghijklmnopqrstuvwxyz0123456789';
    const upsert = await refusal(admin.models.upsert({ id: 'sneaky', provider: 'openai', display_name: secret, input_price: 1, output_price: 1, is_active: true }));
    expect(upsert.code).toBe('BAD_REQUEST');
    expect(upsert.message).toMatch(/secret/i);
    expect(upsert.message).not.toContain(secret);
    const set = await refusal(admin.config.set({ key: 'prompt_hard_limit', value: secret as unknown as number }));
    expect(set.code).toBe('BAD_REQUEST');
    expect(set.message).not.toContain(secret);
  });

  it('config.set applies to the next request: over the new hard limit is BAD_REQUEST before any upstream call', async () => {
    const { admin, alice, upstream } = await setup();
    expect(await admin.config.set({ key: 'prompt_soft_limit', value: 2 })).toMatchObject({ prompt_soft_limit: 2 });
    await admin.config.set({ key: 'prompt_hard_limit', value: 4 });
    const error = await refusal(alice.chat.complete(chat('one two three four five six seven eight')));
    expect(error.code).toBe('BAD_REQUEST');
    expect(upstream.requests).toHaveLength(0);
    expect((await admin.config.get()).settings.prompt_hard_limit).toBe(4);
  });

  it('models.setActive takes a model out of the list', async () => {
    const { admin, alice } = await setup();
    await admin.models.setActive({ id: 'gpt-4o', is_active: false });
    expect((await alice.models.list()).map((m) => m.id)).not.toContain('gpt-4o');
    expect((await refusal(admin.models.setActive({ id: 'no-such-model', is_active: true }))).code).toBe('NOT_FOUND');
  });
});

describe('the metered chat engine', () => {
  it('prices the usage event by hand: gpt-4o, 1000 in, 500 out, markup 30%', async () => {
    const { alice } = await setup();
    const content = 'price this please';
    const answer = await alice.chat.complete(chat(content));
    // (1000 × $2.50 + 500 × $10) / 1M = $0.0075; × 1.3 = $0.00975.
    expect(answer.cost?.actualUsd).toBe(0.00975);
    const prompt = await checkPrompt([{ role: 'user', content }], { prompt_soft_limit: 5000, prompt_hard_limit: 10_000 });
    const promptTokens = prompt.status === 'refused' ? Number.NaN : prompt.promptTokens;
    // prompt × $2.50 + 1000 expected output × $10, per million, + 30%.
    expect(answer.cost?.estimatedUsd).toBeCloseTo(((promptTokens * 2.5 + 1000 * 10) / 1e6) * 1.3, 9);
    const mine = await alice.usage.mine();
    expect(mine).toMatchObject({ requests: 1, inputTokens: 1000, outputTokens: 500, costUsd: 0.00975 });
  });

  it('prices the answer by the model that served it when a fallback of another provider answers', async () => {
    const { alice, upstream } = await setup();
    upstream.answeredBy = { provider: 'anthropic', model: 'claude-sonnet-4' };
    const answer = await alice.chat.complete(chat('who answers?'));
    // claude-sonnet-4: (1000 x $3 + 500 x $15) / 1M = $0.0105; x 1.3 = $0.01365.
    expect(answer.cost?.actualUsd).toBeCloseTo(0.01365, 9);
  });

  it('puts a warning first over the soft limit', async () => {
    const { admin, engine } = await setup();
    await admin.config.set({ key: 'prompt_soft_limit', value: 2 });
    const events: StreamEvent[] = [];
    for await (const e of eventsOf(engine, { chat: chat('one two three four five'), userId: 'alice', signal: new AbortController().signal })) events.push(e);
    expect(events.map((e) => e.type)).toEqual(['warning', 'start', 'delta', 'usage', 'done']);
  });

  it('records the usage of an answer whose reader went away after it started', async () => {
    const { engine, ledger, upstream } = await setup();
    for await (const e of eventsOf(engine, { chat: chat(), userId: 'carol', signal: new AbortController().signal })) {
      if (e.type === 'start') break;
    }
    await upstream.finished;
    const today = new Date().toISOString().slice(0, 10);
    expect(await ledger.mine('carol', { from: today, to: today })).toMatchObject({ requests: 1, inputTokens: 1000, outputTokens: 500, costUsd: 0.00975 });
  });

  it('refuses over the daily budget or RPM with TOO_MANY_REQUESTS, a clear message and a retry time, before any upstream call', async () => {
    const { admin, alice, bob, upstream } = await setup();
    await admin.users.setLimits({ userId: 'alice', limits: { dailyBudgetUsd: 0 } });
    const budget = await refusal(alice.chat.complete(chat()));
    expect(budget.code).toBe('TOO_MANY_REQUESTS');
    expect(budget.message).toMatch(/budget/);
    expect((budget.cause as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);

    await admin.users.setLimits({ userId: 'bob', limits: { rpm: 1 } });
    await bob.chat.complete(chat());
    const rpm = await refusal(bob.chat.complete(chat()));
    expect(rpm.code).toBe('TOO_MANY_REQUESTS');
    expect((rpm.cause as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);
    expect(upstream.requests).toHaveLength(1);
    expect((await admin.usage.byUser()).map((u) => [u.userId, u.requests])).toEqual([['bob', 1]]);
  });
});
