import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ProviderPoolStatus, StreamEvent } from '../../shared';
import type { ModelCatalog, ResolvedModel } from '../../server/business/types';
import { Dispatcher } from '../../server/dispatch/Dispatcher';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { createLogger } from '../../server/observability/logger';
import type { RedisClient } from '../../server/ops/redisClient';
import { KeyPool } from '../../server/pool/KeyPool';
import { createRedisStore } from '../../server/pool/stores/redisStore';
import { createAdapters } from '../../server/providers/createAdapters';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';
import { forEachRedisTopology, type RedisTopology } from '../support/redisTopologies';

/**
 * Issue 22, learned limits, end to end: an upstream (the mock provider, OpenAI and Anthropic
 * wires) that enforces an RPM per key it tells nobody in advance, only through its rate-limit
 * headers and 429s; gateway instances (each its own Redis connection, pool store, key pool and
 * dispatcher, as createGateway builds them) sharing one Redis, with NO configured RPM; on a
 * single Redis node and on a Redis Cluster.
 *
 * One injected clock drives the mock's window, the pool store and the dispatchers: windows pass
 * by moving it, nothing sleeps.
 */

const MINUTE = 60_000;
let now = 30_000 * MINUTE;
const clock = () => now;

const MODELS: ResolvedModel[] = [
  { id: 'gpt-4o-mini', provider: 'openai', upstreamModel: 'gpt-4o-mini', displayName: 'GPT-4o mini', inputPrice: 1, outputPrice: 2, fallbacks: [], capabilities: { tools: true, vision: true, json_schema: true, reasoning: true } },
  { id: 'claude-sonnet-4', provider: 'anthropic', upstreamModel: 'claude-sonnet-4-20250514', displayName: 'Claude Sonnet 4', inputPrice: 3, outputPrice: 15, fallbacks: [], capabilities: { tools: true, vision: true, json_schema: true, reasoning: true } },
];
const catalog: ModelCatalog = { resolve: async (name) => MODELS.find((m) => m.id === name) ?? null, list: async () => MODELS };

const UPSTREAM_RPM = 5;
const secrets: string[] = [];
const logLines: string[] = [];
const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logLines.push(line) } });
const http = new UpstreamHttp();
const adapters = createAdapters(http);
const connections: RedisClient[] = [];
let mock: MockProvider;

beforeAll(async () => {
  mock = await startMockProvider({ clock, rpmPerKey: UPSTREAM_RPM });
});
afterAll(async () => {
  await http.close();
  await mock.close();
  await Promise.all(connections.map((r) => r.quit()));
  // Nothing this file logged carries a key.
  for (const secret of secrets) expect(logLines.join('\n')).not.toContain(secret);
});
beforeEach(() => {
  now += 10 * MINUTE; // every test starts with empty windows everywhere
});

function newKey(label: string): string {
  const key = `sk-test-${label}-${randomBytes(8).toString('hex')}`;
  secrets.push(key);
  return key;
}

interface Instance {
  pool: KeyPool;
  dispatcher: Dispatcher;
}

/** One gateway instance's pool and dispatch on the shared Redis (prefix = the deployment). */
function instance(topology: RedisTopology, prefix: string, provider: 'openai' | 'anthropic', keys: string[], rpm: number, learnLimits = true): Instance {
  const redis = topology.connect();
  connections.push(redis);
  const pool = new KeyPool(createRedisStore({ redis, prefix, clock }), { logger });
  pool.setPools([{ id: provider, provider, strategy: 'round-robin', rpm, tpm: 0, keys: keys.map((secret) => ({ secret, account: null })) }]);
  const dispatcher = new Dispatcher({
    pool,
    catalog,
    adapters,
    baseUrls: { openai: mock.baseUrls.openai, anthropic: mock.baseUrls.anthropic },
    maxAttempts: 3,
    deadlineMs: 30_000,
    learnLimits,
    logger,
    clock,
    sleep: async () => {},
  });
  return { pool, dispatcher };
}

async function ask(dispatcher: Dispatcher, model: string): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of dispatcher.stream({ chat: { model, messages: [{ role: 'user', content: 'hi' }] }, userId: 'u1', signal: new AbortController().signal })) events.push(event);
  return events;
}

/** `perInstance` requests from every instance at once; how many were served and how refused. */
async function burst(instances: Instance[], model: string, perInstance: number): Promise<{ served: number; refused: StreamEvent[] }> {
  const answers = await Promise.all(instances.flatMap((i) => Array.from({ length: perInstance }, () => ask(i.dispatcher, model))));
  const served = answers.filter((events) => events.at(-1)?.type === 'done').length;
  return { served, refused: answers.map((events) => events.at(-1)!).filter((e) => e.type === 'error') };
}

/** 429s the mock sent for these keys: requests over the limit it enforces. */
const overshoot = (keys: string[]) => keys.reduce((sum, key) => sum + mock.statsFor(key).total.rateLimited, 0);

async function providerStatus(pool: KeyPool, provider: string): Promise<ProviderPoolStatus> {
  return (await pool.status()).providers.find((p) => p.provider === provider)!;
}

forEachRedisTopology((topology) => {
  describe('issue 22: learned limits', () => {
    it.each([
      ['openai', 'gpt-4o-mini'],
      ['anthropic', 'claude-sonnet-4'],
    ] as const)('%s wire: 3 instances, no configured RPM, learn the limit in the first window; overshoot stays 0 after it', async (provider, model) => {
      const keys = [newKey(`${provider}-a`), newKey(`${provider}-b`)];
      const prefix = `test-learned-${randomUUID()}`;
      const instances = [instance(topology, prefix, provider, keys, 0), instance(topology, prefix, provider, keys, 0), instance(topology, prefix, provider, keys, 0)];

      // The first window: nothing known, so a burst larger than the upstream allows finds out.
      const first = await burst(instances, model, 6);
      expect(first.served).toBe(2 * UPSTREAM_RPM);
      expect(overshoot(keys)).toBeGreaterThan(0);

      const status = await providerStatus(instances[2]!.pool, provider);
      for (const key of status.keys) {
        expect(key).toMatchObject({ rpmLimit: UPSTREAM_RPM, rpmSource: 'learned', learned: { requests: { limit: UPSTREAM_RPM } } });
      }

      // Every later window: the instances together take exactly what the upstream allows, and
      // refuse the rest themselves (rate_limited with a Retry-After), without one 429 upstream.
      const before = overshoot(keys);
      for (let window = 0; window < 3; window++) {
        now += MINUTE + 1_000;
        const { served, refused } = await burst(instances, model, 6);
        expect(served).toBe(2 * UPSTREAM_RPM);
        expect(refused).toHaveLength(18 - served);
        for (const e of refused) expect(e).toMatchObject({ type: 'error', code: 'rate_limited', retryAfterMs: expect.any(Number) });
        expect(overshoot(keys)).toBe(before);
      }
    });

    it('a configured RPM above the provider\'s is corrected, logged once, shown as "learned"', async () => {
      const key = newKey('configured-high');
      const { pool, dispatcher } = instance(topology, `test-learned-${randomUUID()}`, 'openai', [key], 100);
      const warnings = () => logLines.filter((line) => line.includes("above the provider's stated limit") && line.includes('"configured":100'));
      const linesBefore = warnings().length;

      for (let i = 0; i < UPSTREAM_RPM; i++) expect((await ask(dispatcher, 'gpt-4o-mini')).at(-1)).toEqual({ type: 'done', finishReason: 'stop' });
      // The sixth never reaches the upstream: the corrected limit refuses it here.
      expect((await ask(dispatcher, 'gpt-4o-mini')).at(-1)).toMatchObject({ type: 'error', code: 'rate_limited' });
      expect(overshoot([key])).toBe(0);
      expect(mock.statsFor(key).total.requests).toBe(UPSTREAM_RPM);

      expect(warnings().length - linesBefore).toBe(1);
      const [status] = (await providerStatus(pool, 'openai')).keys;
      expect(status).toMatchObject({ rpmLimit: UPSTREAM_RPM, rpmSource: 'learned', learned: { requests: { limit: UPSTREAM_RPM, remaining: 0 } } });
      expect((await providerStatus(pool, 'openai')).totals.capacityRpm).toBe(0);
    });

    it('a configured RPM below the provider\'s stands (source "configured")', async () => {
      const key = newKey('configured-low');
      const { pool, dispatcher } = instance(topology, `test-learned-${randomUUID()}`, 'openai', [key], 2);
      for (let i = 0; i < 3; i++) await ask(dispatcher, 'gpt-4o-mini');
      expect(mock.statsFor(key).total.requests).toBe(2);
      const [status] = (await providerStatus(pool, 'openai')).keys;
      expect(status).toMatchObject({ rpmLimit: 2, rpmSource: 'configured', learned: { requests: { limit: UPSTREAM_RPM } } });
    });

    it('LEARN_LIMITS=0 (learnLimits: false): nothing is learned, the upstream refuses instead', async () => {
      const key = newKey('learning-off');
      const { pool, dispatcher } = instance(topology, `test-learned-${randomUUID()}`, 'openai', [key], 0, false);
      for (let i = 0; i < UPSTREAM_RPM + 1; i++) await ask(dispatcher, 'gpt-4o-mini');
      expect(overshoot([key])).toBe(1);
      const [status] = (await providerStatus(pool, 'openai')).keys;
      expect(status).toMatchObject({ rpmLimit: 0, rpmSource: 'configured', learned: null });
    });
  });
});
