import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger';
import { createGatewayRedis } from '../../server/ops/createGatewayRedis';
import { createInstanceRegistry } from '../../server/ops/instanceRegistry';
import { createResilientStore, type ResilientStore, type StoreMode } from '../../server/ops/resilientStore';
import { createMemoryStore } from '../../server/pool/stores/memoryStore';
import { createRedisStore } from '../../server/pool/stores/redisStore';
import type { CountingPoolStore, PoolDefinition, PoolStore } from '../../server/pool/types';
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
  const redis = createGatewayRedis(`redis://127.0.0.1:${port}`, { maxReconnectDelayMs: 100, commandTimeoutMs: 500 }) as Redis;
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
  // The outage's admissions were written into the shared windows (round robin: f1, f2, f1, f2, f1),
  // and picks now count in Redis: f2 has one request of its 3 left.
  expect(states.map((s) => s.requestsThisWindow)).toEqual([3, 2]);
  expect(await countGranted(store, def, 4)).toBe(1);
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
  // Two instances shared 100 rpm per account: this one may use 50 locally, less the one request
  // Redis counted before the outage (carried into the fallback), and never the rejected key.
  const picks = await Promise.all(Array.from({ length: 60 }, () => store.pick(def)));
  const granted = picks.filter((p) => p.ok);
  expect(granted).toHaveLength(49);
  expect(granted.every((p) => p.ok && p.fingerprint === 'f1')).toBe(true);
  expect(registry.count()).toBe(2); // the last count seen, kept while Redis is away
  expect(await registry.beat()).toBeNull();

  const back = nextMode(store, 'redis');
  server = await own(startRedisServer(port));
  await back;
  expect(store.fallbackDivisor()).toBe(1);
  const picked = await store.pick(def);
  expect(picked.ok && picked.fingerprint).toBe('f1');
  // A fresh Redis: the outage's 49 local admissions were written into it on return, and the pick
  // above counted there, not locally.
  expect((await primary.status(def))[0]!.requestsThisWindow).toBe(50);
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


/**
 * Issue 24.9: the outage fallback gave each of N instances ceil(limit / N) from empty windows
 * (3 keys x 5 rpm let 48 requests through in 45 s across a kill). A simulated outage (a
 * connection that reports closed, a primary that fails) over a real Redis store, with an
 * injected clock, so windows are exact.
 */
class FakeConnection extends EventEmitter {
  status = 'ready';
  ping(): Promise<string> {
    return this.status === 'ready' ? Promise.resolve('PONG') : Promise.reject(new Error('Connection is closed.'));
  }
}

function switchable(store: CountingPoolStore, isDown: () => boolean): CountingPoolStore {
  const gate = <A extends unknown[], R>(call: (...args: A) => Promise<R>) => (...args: A): Promise<R> =>
    isDown() ? Promise.reject(new Error('Connection is closed.')) : call(...args);
  return {
    pick: gate((p) => store.pick(p)),
    record: gate((p, f, o) => store.record(p, f, o)),
    setEnabled: gate((p, f, e) => store.setEnabled(p, f, e)),
    status: gate((p) => store.status(p)),
    add: gate((p, f, e) => store.add(p, f, e)),
    now: gate(() => store.now()),
    close: () => store.close(),
  };
}

function instancesSharing(primary: CountingPoolStore, clock: () => number, count: number) {
  return Array.from({ length: count }, () => {
    const connection = new FakeConnection();
    const store = createResilientStore({ redis: connection as unknown as Redis, primary, clock, instanceCount: () => count, probeMs: 3_600_000, mirrorMs: 0 });
    cleanup.push(() => store.close());
    const goDown = () => {
      connection.status = 'reconnecting';
      connection.emit('close');
    };
    const comeBack = () => {
      connection.status = 'ready';
      return store.probe();
    };
    return { store, goDown, comeBack };
  });
}

it('issue 24.9: during an outage N instances together admit at most the limit per window and key, counting what was admitted just before it, and Redis gets the outage\'s admissions back', async () => {
  const server = await own(startRedisServer());
  const redis = createGatewayRedis(server.url, { maxReconnectDelayMs: 100 });
  cleanup.push(async () => redis.disconnect());
  await waitFor(() => redis.status === 'ready', 'redis ready');
  let now = 1_000;
  const clock = () => now;
  let down = false;
  const shared = createRedisStore({ redis, prefix: `test-ops-${randomUUID()}`, clock });
  const primary = switchable(shared, () => down);
  const def: PoolDefinition = {
    id: 'openai',
    strategy: 'round-robin',
    rpm: 5,
    tpm: 0,
    windowMs: 60_000,
    keys: ['k1', 'k2', 'k3'].map((fingerprint) => ({ fingerprint, account: fingerprint })),
  };
  const [a, b, c] = instancesSharing(primary, clock, 3) as [ReturnType<typeof instancesSharing>[number], ReturnType<typeof instancesSharing>[number], ReturnType<typeof instancesSharing>[number]];
  const admitted: { key: string; at: number; during: boolean }[] = [];
  const tryPicks = async (instance: { store: ResilientStore }, attempts: number) => {
    for (let i = 0; i < attempts; i++) {
      const picked = await instance.store.pick(def);
      if (picked.ok) admitted.push({ key: picked.fingerprint, at: now, during: down });
    }
  };

  // One request per key through Redis (round robin is shared: k1, k2, k3), one from each instance.
  for (const instance of [a, b, c]) await tryPicks(instance, 1);
  now = 2_000;
  // Every instance reads the windows of the pools it serves (every mirrorMs in production).
  for (const instance of [a, b, c]) await instance.store.mirrorNow();
  now = 3_000;
  await tryPicks(b, 3); // one more per key, seen by B alone

  now = 10_000;
  down = true;
  for (const instance of [a, b, c]) instance.goDown();
  expect(a.store.fallbackDivisor()).toBe(3);
  // Each instance's share is floor(5 / 3) = 1 per key, and each has already seen at least one
  // request per key in the window: nothing more until those leave it (ceil and empty windows
  // let 3 x 2 = 6 more per key through here, 8 in the window).
  for (const instance of [a, b, c]) await tryPicks(instance, 10);
  expect(admitted.filter((x) => x.during)).toHaveLength(0);

  now = 62_500; // the counts read at 2 000 have left the window; B's own requests at 3 000 have not
  for (const instance of [a, b, c]) await tryPicks(instance, 10);
  now = 63_500;
  for (const instance of [a, b, c]) await tryPicks(instance, 10);
  expect(admitted.filter((x) => x.during)).toHaveLength(9); // one per key per instance

  // Over every window, every key: the instances together stayed within its 5 rpm.
  for (const key of ['k1', 'k2', 'k3']) {
    const times = admitted.filter((x) => x.key === key).map((x) => x.at);
    for (const end of times) expect(times.filter((t) => t > end - def.windowMs && t <= end).length).toBeLessThanOrEqual(def.rpm);
  }

  now = 70_000;
  down = false;
  for (const instance of [a, b, c]) expect(await instance.comeBack()).toBe('redis');
  // The shared window holds the outage's admissions (3 per key in (10 000, 70 000]): the
  // instances back on Redis do not find it empty.
  expect((await shared.status(def)).map((s) => s.requestsThisWindow)).toEqual([3, 3, 3]);
  const before = admitted.length;
  for (const instance of [a, b, c]) await tryPicks(instance, 10);
  expect(admitted.length - before).toBe(6); // 5 - 3 left per key
});

it('issue 24.9: with fewer requests per window than instances, an instance serves nothing from the key during an outage (floor, not 1 each)', async () => {
  let down = false;
  const backing = createMemoryStore();
  const primary = switchable(backing, () => down);
  const def = pool(2, ['only']);
  const instances = instancesSharing(primary, Date.now, 3);
  down = true;
  for (const instance of instances) instance.goDown();
  for (const instance of instances) {
    const picked = await instance.store.pick(def);
    expect(picked).toMatchObject({ ok: false, reason: 'busy' });
  }
});
