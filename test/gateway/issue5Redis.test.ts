import { TRPCClientError } from '@trpc/client';
import { Redis } from 'ioredis';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../server/observability/logger';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue #5 over real HTTP with two gateway instances on one Redis (one REDIS_PREFIX, one
 * ENCRYPTION_KEY): a key added on one instance is used, first, by the other; per-user RPM is one
 * window for both; a config change on one applies to the other's next request; and afterwards
 * neither the logs nor a dump of every Redis key under the prefix holds a BYOK plaintext.
 */

const ALICE_KEY = 'sk-test-redis-alice-a1b2c3d4e5f60718293a';
const BOB_KEY = 'sk-test-redis-bob-0f1e2d3c4b5a69788796';
const ENCRYPTION_KEY = 'ab'.repeat(32);
const PREFIX = `kr-test-issue5-${process.pid}-${Date.now()}`;
const chat = (content = 'hello across instances') => ({ model: 'gpt-4o', messages: [{ role: 'user' as const, content }] });

const logLines: string[] = [];
const capture = () =>
  createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  });

let one: TestGateway;
let two: TestGateway;

beforeAll(async () => {
  const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: PREFIX, ENCRYPTION_KEY };
  one = await startTestGateway({ env, logger: capture() });
  two = await startTestGateway({ env, logger: capture() });
});
afterAll(async () => {
  await Promise.all([one?.close(), two?.close()]);
});

interface Refusal {
  message: string;
  data?: { code?: string; retryAfterMs?: number } | null;
}
async function refusal(promise: Promise<unknown>): Promise<Refusal> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TRPCClientError) return error as Refusal;
    throw error;
  }
  throw new Error('expected a refusal');
}

/** Requests the mock providers of both instances saw with this key. */
const servedBy = (key: string) => one.gateway.mock!.statsFor(key).total.requests + two.gateway.mock!.statsFor(key).total.requests;
const upstreamRequests = () => one.gateway.mock!.stats().total.requests + two.gateway.mock!.stats().total.requests;

describe('BYOK across instances', () => {
  it("a key added on one instance is its owner's first choice on the other, and nobody else's", async () => {
    const aliceOne = one.trpc(await one.token('alice'));
    const aliceTwo = two.trpc(await two.token('alice'));
    const bobTwo = two.trpc(await two.token('bob'));
    const added = await aliceOne.byok.add.mutate({ provider: 'openai', apiKey: ALICE_KEY, label: 'shared' });
    expect(await aliceTwo.byok.list.query()).toEqual([expect.objectContaining({ id: added.id, mask: 'sk-…293a', status: 'ok' })]);
    expect(await aliceTwo.byok.test.mutate({ id: added.id })).toEqual({ result: 'valid' });

    const before = servedBy(ALICE_KEY);
    const answer = await aliceTwo.chat.complete.mutate(chat());
    expect(answer.provider).toBe('openai');
    expect(servedBy(ALICE_KEY)).toBe(before + 1);

    expect(await bobTwo.byok.list.query()).toEqual([]);
    expect((await refusal(bobTwo.byok.test.mutate({ id: added.id }))).data?.code).toBe('NOT_FOUND');
    expect((await refusal(bobTwo.byok.remove.mutate({ id: added.id }))).data?.code).toBe('NOT_FOUND');
    await bobTwo.chat.complete.mutate(chat());
    await one.trpc(await one.token('bob')).chat.complete.mutate(chat());
    expect(servedBy(ALICE_KEY)).toBe(before + 1);
  });

  it('with fallback off, a busy own key is the answer: the shared pool is not used', async () => {
    const bob = one.trpc(await one.token('bob'));
    const { id } = await bob.byok.add.mutate({ provider: 'openai', apiKey: BOB_KEY });
    await bob.byok.setSettings.mutate({ fallbackToSharedPool: false });
    for (const gw of [one, two]) gw.gateway.mock!.faults.inject(BOB_KEY, { kind: 'reject' }, { sticky: true });
    const shared = () => [1, 2].reduce((n, i) => n + servedBy(`sk-test-demo-openai-${i}`), 0);
    const before = shared();
    try {
      // Only OpenAI is Bob's: gpt-4o's fallbacks to other providers may still serve him.
      const answer = await bob.chat.complete.mutate({ ...chat(), model: 'gpt-4.1' }).catch(() => null);
      expect(answer?.provider ?? null).not.toBe('openai');
      expect(servedBy(BOB_KEY)).toBeGreaterThan(0);
      expect(shared()).toBe(before);
    } finally {
      for (const gw of [one, two]) gw.gateway.mock!.faults.clear(BOB_KEY);
      await bob.byok.setSettings.mutate({ fallbackToSharedPool: true });
    }
    await bob.byok.remove.mutate({ id });
  });
});

describe('limits and config across instances', () => {
  it('per-user RPM is one window: 2 per minute, the 3rd request on the other instance is refused', async () => {
    await one.trpc(await one.token('root', 'admin')).users.setLimits.mutate({ userId: 'erin', limits: { rpm: 2 } });
    const erinOne = one.trpc(await one.token('erin'));
    const erinTwo = two.trpc(await two.token('erin'));
    await erinOne.chat.complete.mutate(chat());
    await erinOne.chat.complete.mutate(chat());
    const before = upstreamRequests();
    const error = await refusal(erinTwo.chat.complete.mutate(chat()));
    expect(error.data?.code).toBe('TOO_MANY_REQUESTS');
    expect(error.data?.retryAfterMs).toBeGreaterThan(0);
    expect(upstreamRequests()).toBe(before);
    // Usage is written behind (UsageLedger.writeBehindMs, 100 ms): the other instance sees it shortly.
    await expect.poll(async () => (await erinTwo.usage.mine.query()).requests).toBe(2);
  });

  it("config.set on one instance applies to the other's next request, without restart", async () => {
    const adminOne = one.trpc(await one.token('root', 'admin'));
    const adminTwo = two.trpc(await two.token('root', 'admin'));
    const frank = two.trpc(await two.token('frank'));
    await adminOne.config.set.mutate({ key: 'prompt_soft_limit', value: 2 });
    await adminOne.config.set.mutate({ key: 'prompt_hard_limit', value: 3 });
    try {
      // The other instance hears of the change on the store's change channel.
      await expect.poll(async () => (await adminTwo.config.get.query()).settings.prompt_hard_limit).toBe(3);
      const before = upstreamRequests();
      const error = await refusal(frank.chat.complete.mutate(chat('one two three four five six seven eight nine ten')));
      expect(error.data?.code).toBe('BAD_REQUEST');
      expect(upstreamRequests()).toBe(before);
    } finally {
      await adminOne.config.set.mutate({ key: 'prompt_hard_limit', value: 10_000 });
      await adminOne.config.set.mutate({ key: 'prompt_soft_limit', value: 5_000 });
    }
  });
});

describe('secrets', () => {
  it('no BYOK plaintext in any log line or anywhere in Redis', async () => {
    const redis = new Redis(inject('redisUrl'));
    try {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 500);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      expect(keys.some((k) => k.includes('byok'))).toBe(true);
      const dump: string[] = [];
      for (const key of keys) {
        const type = await redis.type(key);
        if (type === 'string') dump.push(String(await redis.get(key)));
        else if (type === 'hash') dump.push(JSON.stringify(await redis.hgetall(key)));
        else if (type === 'list') dump.push(JSON.stringify(await redis.lrange(key, 0, -1)));
        else if (type === 'set') dump.push(JSON.stringify(await redis.smembers(key)));
        else if (type === 'zset') dump.push(JSON.stringify(await redis.zrange(key, 0, -1, 'WITHSCORES')));
        else if (type === 'stream') dump.push(JSON.stringify(await redis.xrange(key, '-', '+')));
        dump.push(key);
      }
      const text = dump.join('\n');
      const logs = logLines.join('');
      expect(logs.length).toBeGreaterThan(0);
      for (const secret of [ALICE_KEY, BOB_KEY]) {
        expect(text).not.toContain(secret);
        expect(logs).not.toContain(secret);
        // Nor a long tail of it (a mask keeps 4 characters).
        expect(text).not.toContain(secret.slice(-10));
        expect(logs).not.toContain(secret.slice(-10));
      }
    } finally {
      redis.disconnect();
    }
  });
});
