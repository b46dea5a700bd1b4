import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamEvent } from '../../shared';
import { TokenService } from '../../server/auth/tokens';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { waitFor } from '../ops/waitFor';
import { startTestGateway, TEST_JWT_SECRET, testModel, trpcClientFor, type TestGateway } from '../support/gatewayHarness';
import { startRedisCluster } from '../support/redisCluster';
import { startRedisServer } from '../support/redisServer';
import { mastersOf } from '../support/redisTopologies';
import { connectRedis, type RedisClient } from '../../server/ops/redisClient';
import { streamKeysOf } from '../../server/streams/streamKeys';

/**
 * Resumes on another instance through Redis (issue 24.6, 24.7): a resume whose producer was
 * killed, the Redis connections resumes cost, and the per-user cap. On a single Redis node and
 * on a Redis Cluster (issue 22), each this file's own (a redis-server, a local 3-master
 * cluster), so that CLIENT LIST counts this file's connections only.
 */

const KEY_KILLED = 'sk-test-resumes-killed-000000000001';
const KEY_PRODUCER = 'sk-test-resumes-producer-0000000002';
const KEY_READER = 'sk-test-resumes-reader-00000000003';
const PREFIX = `resumes-${process.pid}`;

let mock: MockProvider;
const children: ChildProcess[] = [];
const tokens = new TokenService(TEST_JWT_SECRET);
const models = [testModel('gpt-4o', 'openai')];

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  // Each answer sends two chunks, then stalls: streams stay open until the test ends them.
  for (const key of [KEY_KILLED, KEY_PRODUCER, KEY_READER]) mock.faults.inject(key, { kind: 'stall', afterChunks: 2 }, { sticky: true });
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await mock?.close();
});

/** This file's own Redis: a server, or a 3-master cluster (`redis+cluster://...`). */
const TOPOLOGIES: { name: string; cluster: boolean; start: () => Promise<{ url: string; stop(): Promise<void> }> }[] = [
  { name: 'a single Redis node', cluster: false, start: () => startRedisServer() },
  { name: 'a Redis Cluster', cluster: true, start: () => startRedisCluster() },
];

/** server/main.ts in a child process on `redisUrl`, resolved once it listens. */
async function startGatewayProcess(redisUrl: string, env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ENV_FILE: '/dev/null', PORT: '0', HOST: '127.0.0.1', JWT_SECRET: TEST_JWT_SECRET, REDIS_URL: redisUrl, REDIS_PREFIX: PREFIX, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const output: string[] = [];
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  const listening = new Promise<string>((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(line);
      const url = /listening on (http:\/\/[\w.:-]+)/.exec(line)?.[1];
      if (url) resolve(url);
    });
  });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`gateway exited ${String(code)}: ${output.join('\n')}`);
  });
  exited.catch(() => undefined);
  return { child, url: await Promise.race([listening, exited]) };
}

/** An open chat.stream on the fast path (no Origin), read until it has sent `id: <waitForId>`. */
async function openStream(agent: Agent, url: string, token: string, streamId: string, lastEventId: string, waitForId: string) {
  const input = encodeURIComponent(JSON.stringify({ streamId, lastEventId }));
  const res = await request(`${url}/trpc/chat.stream?input=${input}`, { dispatcher: agent, headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
  let text = '';
  // Read on 'data', not with for-await: leaving that loop would close the stream.
  await new Promise<void>((resolve, reject) => {
    res.body.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes(`\nid: ${waitForId}\n`) || text.includes('serialized-error')) resolve();
    });
    res.body.once('end', resolve);
    res.body.once('error', reject);
  });
  return { status: res.statusCode, text, close: () => res.body.destroy() };
}

/** CLIENT LIST of the Redis, a line per client connection (of every master on a cluster). */
async function clientsOf(admin: RedisClient): Promise<string[]> {
  const lists = await Promise.all(mastersOf(admin).map((node) => node.client('LIST') as Promise<string>));
  return lists.flatMap((list) => list.split('\n').filter((line) => line.trim() !== ''));
}

/** `<node>/<client id>` of a CLIENT LIST line: one connection, on one node. */
const clientIdOf = (line: string) => `${/\bladdr=(\S+)/.exec(line)?.[1]}/${/\bid=(\d+)/.exec(line)?.[1]}`;

/**
 * A connection opened since `known` is in a blocking read, and no cluster client is still
 * finding its slots (ioredis' short-lived `refresher` connection). The shared reader of an
 * instance that never read from Redis before is such a connection; on a cluster it is a client
 * of its own that connects in steps (slots, a ready check, then the node of the stream's
 * bucket), so its connections are all there only once it blocks.
 */
async function newBlockingReader(admin: RedisClient, known: ReadonlySet<string>): Promise<boolean> {
  const clients = await clientsOf(admin);
  return !clients.some((line) => line.includes('(refresher)')) && clients.some((line) => /\bflags=\w*b/.test(line) && !known.has(clientIdOf(line)));
}

for (const topology of TOPOLOGIES) describe(`resumes through Redis, on ${topology.name}`, () => {
  let redis: { url: string; stop(): Promise<void> };
  let admin: RedisClient;
  /** Reads other instances' streams, liveness checked every 100 ms. */
  let reader: TestGateway;
  /** Reads nothing before the 300 resumes (cap raised for them): its one shared reader is new there. */
  let many: TestGateway;
  /** Produces streams here, with a cap of 3 per user. */
  let producer: TestGateway;

  beforeAll(async () => {
    redis = await topology.start();
    admin = connectRedis(redis.url);
    const env = (key: string, extra: Record<string, string> = {}) => ({ REDIS_URL: redis.url, REDIS_PREFIX: PREFIX, OPENAI_API_KEY: key, OPENAI_BASE_URL: mock.baseUrls.openai, SHUTDOWN_GRACE_MS: '0', ...extra });
    [reader, many, producer] = await Promise.all([
      startTestGateway({ env: env(KEY_READER), models, streamBuffer: { checkMs: 100 } }),
      startTestGateway({ env: env(KEY_READER), models, streams: { maxStreamsPerUser: 1_000 } }),
      startTestGateway({ env: env(KEY_PRODUCER, { MAX_STREAMS_PER_USER: '3' }), models, streams: { detachGraceMs: 60_000 } }),
    ]);
  }, 30_000);
  afterAll(async () => {
    await Promise.all([reader?.close(), many?.close(), producer?.close()]);
    admin?.disconnect();
    await redis?.stop();
  });

  it('issue 24.6: a resume of a stream whose instance was SIGKILLed mid-answer ends with stream_interrupted within seconds', async () => {
    const killed = await startGatewayProcess(redis.url, { OPENAI_API_KEY: KEY_KILLED, OPENAI_BASE_URL: mock.baseUrls.openai });
    const token = await tokens.mint({ sub: 'kim', role: 'user' }, '5m');
    const { streamId, events } = await trpcClientFor(`${killed.url}/trpc`, () => token).chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a slow answer' }] });
    // The answer's first events have reached Redis; then the instance dies without a word.
    await waitFor(async () => (await admin.xlen(streamKeysOf(PREFIX, streamId).events)) > 0, 'the stream in Redis');
    const exited = once(killed.child, 'exit');
    killed.child.kill('SIGKILL');
    await exited;

    const items: { id: string; event: StreamEvent }[] = [];
    await new Promise<void>((resolve, reject) => {
      trpcClientFor(`${reader.url}/trpc`, () => token).chat.stream.subscribe(
        { streamId, lastEventId: events.at(-1)!.id },
        { onData: (t) => items.push({ id: t.id, event: t.data }), onError: reject, onComplete: resolve },
      );
    });
    expect(items.at(-1)?.event).toMatchObject({ type: 'error', code: 'stream_interrupted' });
    expect(Number(items.at(-1)!.id)).toBeGreaterThan(Number(events.at(-1)!.id));
  }, 20_000);

  it('issue 24.7: 300 resumes on one instance add no Redis connection (one shared reader), and end cleanly', async () => {
    const token = await many.token('alice');
    const { streamId } = await producer.trpc(token).chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'read by many' }] });
    await waitFor(async () => (await admin.xlen(streamKeysOf(PREFIX, streamId).events)) > 0, 'the stream in Redis');
    // A cluster client opens its node connections lazily, one per master at most (any client of
    // the gateways touching a node the first time): allowed for; one per resume would be 299.
    const lazy = topology.cluster ? mastersOf(admin).length : 0;
    const agent = new Agent({ connections: 400 });
    const opened: { close(): void }[] = [];
    try {
      // One resume first: the instance's shared reader exists, connected, from then on.
      const known = new Set((await clientsOf(admin)).map(clientIdOf));
      const first = await openStream(agent, many.url, token, streamId, '1', '2');
      opened.push(first);
      expect(first.status).toBe(200);
      await waitFor(() => newBlockingReader(admin, known), "the instance's shared blocking read");
      const before = await clientsOf(admin);
      const rest = await Promise.all(Array.from({ length: 299 }, () => openStream(agent, many.url, token, streamId, '1', '2')));
      opened.push(...rest);
      for (const r of rest) expect(r.text).toContain('\nid: 2\n');
      expect(many.gateway.deps.streams.subscriptionsOf('alice')).toBe(300);
      // Every resume has read from Redis: one connection of its own each, before the fix.
      const during = await clientsOf(admin);
      expect(during.length, `connections before:\n${before.join('\n')}\nwith 300 resumes:\n${during.join('\n')}`).toBeLessThanOrEqual(before.length + lazy);
      for (const r of opened.splice(0)) r.close();
      await waitFor(() => many.gateway.deps.streams.subscriptionsOf('alice') === 0, 'every resume to end');
      expect((await clientsOf(admin)).length).toBeLessThanOrEqual(before.length + lazy);
    } finally {
      // The streams stall: closed here, or closing the agent would wait for them.
      for (const r of opened) r.close();
      await agent.close();
    }
  }, 20_000);

  it('issue 24.7: the (cap+1)th concurrent chat.stream of one user is refused with TOO_MANY_REQUESTS, and let in once one ends', async () => {
    const token = await producer.token('carl');
    const { streamId } = await producer.trpc(token).chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'capped' }] });
    const agent = new Agent({ connections: 10 });
    try {
      const open = await Promise.all([1, 2, 3].map(() => openStream(agent, producer.url, token, streamId, '0', '2')));
      for (const o of open) expect(o.text).toContain('\nid: 2\n');
      // The fourth: on the fast path and through the tRPC client alike.
      const refused = await openStream(agent, producer.url, token, streamId, '0', '2');
      expect(refused.text).toContain('serialized-error');
      expect(refused.text).toContain('"code":"TOO_MANY_REQUESTS"');
      refused.close();
      const error = await new Promise<unknown>((resolve) => {
        producer.trpc(token).chat.stream.subscribe({ streamId }, { onError: resolve, onComplete: () => resolve('completed') });
      });
      expect(error).toMatchObject({ data: { code: 'TOO_MANY_REQUESTS', gatewayCode: 'rate_limited' } });
      // Another user is not affected.
      const other = await producer.token('dora');
      const { streamId: theirs } = await producer.trpc(other).chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'mine' }] });
      const theirStream = await openStream(agent, producer.url, other, theirs, '0', '2');
      expect(theirStream.text).toContain('\nid: 2\n');
      theirStream.close();
      // One ends: the next is let in.
      open[0]!.close();
      await waitFor(() => producer.gateway.deps.streams.subscriptionsOf('carl') === 2, 'the closed stream to end');
      const again = await openStream(agent, producer.url, token, streamId, '0', '2');
      expect(again.text).toContain('\nid: 2\n');
      for (const o of [again, ...open.slice(1)]) o.close();
    } finally {
      await agent.close();
    }
  });
});
