import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import type { PoolStatus, StreamEvent } from '../../shared';
import { TokenService } from '../../server/auth/tokens';
import type { GatewayContext, GatewayDeps, PoolAdmin } from '../../server/gateway/context';
import { GatewayFailure } from '../../server/gateway/gatewayFailure';
import { createCaller } from '../../server/gateway/router';
import { silentLogger } from '../../server/observability/logger';
import { pushEach, type ChatEngine, type ChatEngineRequest, type EventSink } from '../../server/streams/ChatEngine';
import { ChatStreams } from '../../server/streams/ChatStreams';
import { ALL_CAPABILITIES, catalogOf, testModel } from '../support/gatewayHarness';

const ANSWER: StreamEvent[] = [
  { type: 'start', provider: 'openai', model: 'gpt-4o', keyFingerprint: 'f1' },
  { type: 'delta', text: 'Hel' },
  { type: 'delta', text: 'lo' },
  { type: 'usage', usage: { inputTokens: 3, outputTokens: 2, cachedInputTokens: 0, reasoningTokens: 0 }, cost: { estimatedUsd: 0.001 } },
  { type: 'done', finishReason: 'stop' },
];
const BUSY: StreamEvent[] = [{ type: 'error', code: 'rate_limited', message: 'every openai key is busy', retryAfterMs: 1500 }];

class FakeEngine implements ChatEngine {
  requests: ChatEngineRequest[] = [];
  constructor(public script: StreamEvent[]) {}
  async run(req: ChatEngineRequest, emit: EventSink) {
    this.requests.push(req);
    await pushEach(this.script, emit);
  }
}

const STATUS: PoolStatus = { at: 1, windowMs: 60_000, providers: [] };
class FakePool implements PoolAdmin {
  switched: [string, string, boolean][] = [];
  async status() {
    return STATUS;
  }
  async setKeyEnabled(poolId: string, fingerprint: string, enabled: boolean) {
    this.switched.push([poolId, fingerprint, enabled]);
    return fingerprint === 'known';
  }
}

async function setup(script: StreamEvent[] = ANSWER) {
  const engine = new FakeEngine(script);
  const pool = new FakePool();
  const deps: GatewayDeps = {
    engine,
    streams: new ChatStreams({ engine, logger: silentLogger }),
    catalog: await catalogOf([testModel('gpt-4o', 'openai'), testModel('hidden', 'openai', { is_active: false })]),
    pool,
    tokens: new TokenService('router-test-secret-router-test-secret-0123'),
    logger: silentLogger,
  };
  const ctx = (user: GatewayContext['user']): GatewayContext => ({ deps, user, authRefusal: user ? null : 'missing', requestId: 'req-1' });
  return {
    engine,
    pool,
    anonymous: createCaller(ctx(null)),
    alice: createCaller(ctx({ id: 'alice', role: 'user' })),
    mallory: createCaller(ctx({ id: 'mallory', role: 'user' })),
    admin: createCaller(ctx({ id: 'root', role: 'admin' })),
  };
}

const chat = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hi' }] };

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return error instanceof TRPCError ? error.code : 'not a TRPCError';
  }
}

describe('appRouter via createCaller', () => {
  it('refuses callers without a user (UNAUTHORIZED) and non-admins on admin procedures (FORBIDDEN)', async () => {
    const { anonymous, alice } = await setup();
    expect(await codeOf(anonymous.chat.complete(chat))).toBe('UNAUTHORIZED');
    expect(await codeOf(anonymous.models.list())).toBe('UNAUTHORIZED');
    expect(await codeOf(alice.pool.status())).toBe('FORBIDDEN');
    expect(await codeOf(alice.pool.setKeyEnabled({ provider: 'openai', fingerprint: 'known', enabled: false }))).toBe('FORBIDDEN');
    expect(await codeOf(alice.pool.watch())).toBe('FORBIDDEN');
  });

  it('validates input (BAD_REQUEST, zod error as cause)', async () => {
    const { alice } = await setup();
    const error = await alice.chat.complete({ model: 'gpt-4o', messages: [] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCError);
    expect((error as TRPCError).code).toBe('BAD_REQUEST');
  });

  it('chat.complete answers whole, with provider, model, usage and cost', async () => {
    const { alice, engine } = await setup();
    expect(await alice.chat.complete(chat)).toEqual({
      text: 'Hello',
      toolCalls: [],
      reasoning: '',
      provider: 'openai',
      model: 'gpt-4o',
      finishReason: 'stop',
      usage: { inputTokens: 3, outputTokens: 2, cachedInputTokens: 0, reasoningTokens: 0 },
      cost: { estimatedUsd: 0.001 },
    });
    expect(engine.requests[0]).toMatchObject({ userId: 'alice', requestId: 'req-1', chat });
  });

  it('every key busy: TOO_MANY_REQUESTS carrying retryAfterMs, for complete and start alike', async () => {
    const { alice } = await setup(BUSY);
    for (const call of [alice.chat.complete(chat), alice.chat.start(chat)]) {
      const error = (await call.catch((e: unknown) => e)) as TRPCError;
      expect(error.code).toBe('TOO_MANY_REQUESTS');
      expect(error.cause).toBeInstanceOf(GatewayFailure);
      expect((error.cause as GatewayFailure).retryAfterMs).toBe(1500);
    }
  });

  it('chat.start + chat.stream yield tracked events; the stream is bound to its owner', async () => {
    const { alice, mallory } = await setup();
    const { streamId } = await alice.chat.start(chat);
    expect(streamId).toMatch(/^[0-9a-f-]{36}$/);
    const seen: { id: string; type: string }[] = [];
    for await (const item of await alice.chat.stream({ streamId })) {
      // tracked(id, data) is a [id, data, symbol] tuple on the server side.
      const [id, event] = item as unknown as [string, StreamEvent];
      seen.push({ id, type: event.type });
    }
    expect(seen).toEqual([
      { id: '1', type: 'start' },
      { id: '2', type: 'delta' },
      { id: '3', type: 'delta' },
      { id: '4', type: 'usage' },
      { id: '5', type: 'done' },
    ]);
    expect(await codeOf((async () => { for await (const _ of await mallory.chat.stream({ streamId })) void _; })())).toBe('NOT_FOUND');
  });

  it('chat.start brings the events held when it answers; chat.stream after the last of them repeats none', async () => {
    const { alice } = await setup();
    const started = await alice.chat.start(chat);
    // chat.start answers at the first event: at least that one, in order from id 1.
    expect(started.events.length).toBeGreaterThanOrEqual(1);
    expect(started.events).toEqual(ANSWER.slice(0, started.events.length).map((event, i) => ({ id: String(i + 1), event })));
    const { streamId } = await alice.chat.start(chat);
    const seen: string[] = [];
    for await (const item of await alice.chat.stream({ streamId, lastEventId: '2' })) seen.push((item as unknown as [string])[0]);
    expect(seen).toEqual(['3', '4', '5']);
  });

  it('models.list shows active models with names and prices', async () => {
    const { alice } = await setup();
    expect(await alice.models.list()).toEqual([{ id: 'gpt-4o', provider: 'openai', displayName: 'gpt-4o', inputPrice: 1, outputPrice: 2, capabilities: ALL_CAPABILITIES, kind: 'chat' }]);
  });

  it('pool.status and pool.setKeyEnabled for admins; an unknown key is NOT_FOUND', async () => {
    const { admin, pool } = await setup();
    expect(await admin.pool.status()).toEqual(STATUS);
    expect(await admin.pool.setKeyEnabled({ provider: 'openai', fingerprint: 'known', enabled: false })).toEqual({ ok: true });
    expect(await codeOf(admin.pool.setKeyEnabled({ provider: 'openai', fingerprint: 'nope', enabled: true }))).toBe('NOT_FOUND');
    expect(pool.switched[0]).toEqual(['openai', 'known', false]);
  });
});
