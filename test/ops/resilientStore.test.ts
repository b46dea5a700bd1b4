import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger';
import { createGatewayRedis } from '../../server/ops/createGatewayRedis';
import { createInstanceRegistry } from '../../server/ops/instanceRegistry';
import { createResilientStore, type ResilientStore, type StoreMode } from '../../server/ops/resilientStore';
import { createRedisStore } from '../../server/pool/stores/redisStore';
import type { PoolDefinition, PoolStore } from '../../server/pool/types';
import { freePort, startRedisServer, type RedisServer } from '../support/redisServer';
import { captureLines, waitFor } from './waitFor';

/**
 * Redis faults with a Redis this file owns: started late, killed mid-run, restarted on the
 * same port. Waits are on mode-change events or on the process; never on a fixed sleep.
 */

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
});

function pool(rpm: number, fingerprints = ['f1']): PoolDefinition {
  return { id: 'openai', strategy: 'round-robin', rpm, tpm: 0, windowMs: 60_000, keys: fingerprints.map((fingerprint) => ({ fingerprint, account: fingerprint })) };
}

function nextMode(store: ResilientStore, wanted: StoreMode): Promise<void> {
  return new Promise((resolve) => {
    const off = store.onModeChange((mode) => {
      if (mode === wanted) {
        off();
        resolve();
      }
    });
  });
}

async function countGranted(store: PoolStore, def: PoolDefinition, attempts: number): Promise<number> {
  let granted = 0;
  for (let i = 0; i < attempts; i++) if ((await store.pick(def)).ok) granted++;
  return granted;
}

function setUp(port: number, options: { instanceCount?: () => number } = {}) {
  const prefix = `test-ops-${randomUUID()}`;
  const log = captureLines();
  const redis: Redis = createGatewayRedis(`redis://127.0.0.1:${port}`, { maxReconnectDelayMs: 100, commandTimeoutMs: 500 });
  const primary = createRedisStore({ redis, prefix });
  const store = createResilientStore({ redis, primary, logger: createLogger({ destination: log.destination }), probeMs: 50, mirrorMs: 0, ...options });
  cleanup.push(async () => {
    await store.close();
    redis.disconnect();
  });
  return { redis, primary, store, lines: log.lines, prefix };
}

async function own(server: Promise<RedisServer>): Promise<RedisServer> {
  const started = await server;
  cleanup.push(() => started.stop());
  return started;
}

it('starts on the local fallback when Redis is down, and moves to Redis when it comes up', async () => {
  const port = await freePort();
  const { store, primary, lines } = setUp(port);
  const def = pool(3, ['f1', 'f2']);

  expect(store.isDegraded()).toBe(true);
  expect(await countGranted(store, def, 5)).toBe(5); // two keys x 3 rpm, served locally
  await store.record(def, 'f1', { kind: 'rejected' });
  await waitFor(() => lines.some((l) => l.includes('REDIS UNAVAILABLE AT START-UP')), 'the start-up warning');

  const recovered = nextMode(store, 'redis');
  await own(startRedisServer(port));
  await recovered;
  expect(store.isDegraded()).toBe(false);

  // The key rejected during the outage was pushed to Redis and stays out.
  const states = await primary.status(def);
  expect(states.map((s) => [s.fingerprint, s.status, s.reason])).toEqual([
    ['f1', 'disabled', 'rejected'],
    ['f2', 'ok', null],
  ]);
  // Picks now count in Redis.
  expect(await countGranted(store, def, 4)).toBe(3);
  expect((await primary.status(def))[1]!.requestsThisWindow).toBe(3);
});

it('keeps serving with limits divided by the known instances when Redis dies, and recovers when it returns', async () => {
  const port = await freePort();
  let server = await own(startRedisServer(port));
  let instances = () => 1;
  const { redis, primary, store } = setUp(port, { instanceCount: () => instances() });
  await waitFor(() => redis.status === 'ready', 'redis ready');
  const registryPrefix = `test-ops-${randomUUID()}`;
  const registry = createInstanceRegistry({ redis, prefix: registryPrefix, instanceId: 'a' });
  const other = createInstanceRegistry({ redis, prefix: registryPrefix, instanceId: 'b' });
  instances = registry.count;
  await other.beat();
  expect(await registry.beat()).toBe(2);
  await store.probe();
  expect(store.mode()).toBe('redis');

  const def = pool(100, ['f1', 'f2']);
  // Another instance learned that f2 is rejected; the mirror carries that into the fallback.
  await primary.record(def, 'f2', { kind: 'rejected' });
  expect((await store.pick(def)).ok).toBe(true);
  await store.mirrorNow();

  const lost = nextMode(store, 'fallback');
  await server.stop();
  await lost;
  expect(store.fallbackDivisor()).toBe(2);
  // Two instances shared 100 rpm per account: this one may use 50 locally, and never the rejected key.
  const picks = await Promise.all(Array.from({ length: 60 }, () => store.pick(def)));
  const granted = picks.filter((p) => p.ok);
  expect(granted).toHaveLength(50);
  expect(granted.every((p) => p.ok && p.fingerprint === 'f1')).toBe(true);
  expect(registry.count()).toBe(2); // the last count seen, kept while Redis is away
  expect(await registry.beat()).toBeNull();

  const back = nextMode(store, 'redis');
  server = await own(startRedisServer(port));
  await back;
  expect(store.fallbackDivisor()).toBe(1);
  const picked = await store.pick(def);
  expect(picked.ok && picked.fingerprint).toBe('f1');
  // A fresh Redis: the pick above counted there, not locally.
  expect((await primary.status(def))[0]!.requestsThisWindow).toBe(1);
});

it('fails a stalled Redis over after the command timeout instead of hanging, and a probe brings it back', async () => {
  const port = await freePort();
  const server = await own(startRedisServer(port));
  const { redis, store } = setUp(port);
  await waitFor(() => redis.status === 'ready', 'redis ready');
  await store.probe();
  const def = pool(10);
  expect((await store.pick(def)).ok).toBe(true);

  const lost = nextMode(store, 'fallback');
  server.process.kill('SIGSTOP');
  cleanup.push(async () => void server.process.kill('SIGCONT'));
  expect((await store.pick(def)).ok).toBe(true); // served locally once the command timed out
  await lost;

  const back = nextMode(store, 'redis');
  server.process.kill('SIGCONT');
  await back;
  expect((await store.pick(def)).ok).toBe(true);
});

