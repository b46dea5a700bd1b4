import { TRPCClientError } from '@trpc/client';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../server/observability/logger';
import { fingerprintOf } from '../../server/pool/keyIdentity';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue #5 over the real gateway: BYOK (encrypted, masked, per user, used first), business
 * config applied to the next request, prompt limits, cost in the usage event, the usage ledger
 * and per-user limits (also across two instances sharing Redis).
 */

const logLines: string[] = [];
const capture = new Writable({
  write(chunk, _encoding, done) {
    logLines.push(String(chunk));
    done();
  },
});

const ALICE_KEY = 'sk-test-byok-alice-0123456789abcdef';
const BOB_KEY = 'sk-test-byok-bob-fedcba9876543210';
const chat = (content = 'hello keyrack') => ({ model: 'gpt-4o', messages: [{ role: 'user' as const, content }] });

let gw: TestGateway;
let alice: string;
let bob: string;
let admin: string;

beforeAll(async () => {
  gw = await startTestGateway({ logger: createLogger({ level: 'debug', destination: capture }) });
  [alice, bob, admin] = await Promise.all([gw.token('alice'), gw.token('bob'), gw.token('root', 'admin')]);
});
afterAll(() => gw?.close());

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

const servedBy = (key: string) => gw.gateway.mock!.statsFor(key).total.requests;

describe('BYOK over tRPC', () => {
  it('adds a key, lists only its mask, tests it and uses it before the shared pool', async () => {
    const a = gw.trpc(alice);
    const added = await a.byok.add.mutate({ provider: 'openai', apiKey: ALICE_KEY, label: 'mine' });
    expect(added.mask).toBe('sk-…cdef');
    expect(JSON.stringify(added)).not.toContain(ALICE_KEY);
    const listed = await a.byok.list.query();
    expect(listed.map((k) => k.id)).toEqual([added.id]);
    expect(JSON.stringify(listed)).not.toContain(ALICE_KEY);
    expect(await a.byok.test.mutate({ id: added.id })).toEqual({ result: 'valid' });

    const before = servedBy(ALICE_KEY);
    const answer = await a.chat.complete.mutate(chat());
    expect(answer.text).toContain('Mock answer');
    expect(servedBy(ALICE_KEY)).toBe(before + 1);
  });

  it('never lets another user read, test, remove or use a key', async () => {
    const a = gw.trpc(alice);
    const b = gw.trpc(bob);
    const [aliceKey] = await a.byok.list.query();
    expect(await b.byok.list.query()).toEqual([]);
    expect((await refusal(b.byok.test.mutate({ id: aliceKey!.id }))).data?.code).toBe('NOT_FOUND');
    expect((await refusal(b.byok.remove.mutate({ id: aliceKey!.id }))).data?.code).toBe('NOT_FOUND');
    const before = servedBy(ALICE_KEY);
    await b.chat.complete.mutate(chat());
    expect(servedBy(ALICE_KEY)).toBe(before);
    expect(await a.byok.list.query()).toHaveLength(1);
  });

  it('keeps a user off the shared pool when they say so and their keys are busy', async () => {
    const b = gw.trpc(bob);
    const { id } = await b.byok.add.mutate({ provider: 'openai', apiKey: BOB_KEY });
    await b.byok.setSettings.mutate({ fallbackToSharedPool: false });
    gw.gateway.mock!.faults.inject(BOB_KEY, { kind: 'reject' }, { sticky: true });
    const shared = () => [1, 2].reduce((n, i) => n + servedBy(`sk-test-demo-openai-${i}`), 0);
    const before = shared();
    // gpt-4o may still fall back to another provider's model; what must not happen is the
    // shared OpenAI pool serving Bob's OpenAI request.
    await b.chat.complete.mutate(chat()).catch(() => undefined);
    expect(servedBy(BOB_KEY)).toBeGreaterThan(0);
    expect(shared()).toBe(before);
    gw.gateway.mock!.faults.clear(BOB_KEY);
    await b.byok.remove.mutate({ id });
    expect(await b.byok.list.query()).toEqual([]);
  });
});

describe('business config', () => {
  it('refuses non-admins and key-shaped values', async () => {
    expect((await refusal(gw.trpc(alice).config.get.query())).data?.code).toBe('FORBIDDEN');
    const error = await refusal(
      gw.trpc(admin).models.upsert.mutate({ id: 'sneaky', provider: 'openai', display_name: 'sk-proj-' + 'abcdefghijklmnopqrstuvwxyz0123456789', input_price: 1, output_price: 1, is_active: true }),
    );
    expect(error.data?.code).toBe('BAD_REQUEST');
    expect(error.message).not.toContain('sk-proj-' + 'abcdefghijklmnopqrstuvwxyz0123456789');
  });

  it('applies prompt limits to the next request: a warning over the soft limit, BAD_REQUEST over the hard one', async () => {
    const adminClient = gw.trpc(admin);
    await adminClient.config.set.mutate({ key: 'prompt_soft_limit', value: 5 });
    const client = gw.trpc(alice);
    const { streamId } = await client.chat.start.mutate(chat('one two three four five six seven eight nine ten'));
    const events = await new Promise<string[]>((resolve, reject) => {
      const types: string[] = [];
      client.chat.stream.subscribe({ streamId }, { onData: (t) => types.push(t.data.type), onError: reject, onComplete: () => resolve(types) });
    });
    expect(events[0]).toBe('warning');

    await adminClient.config.set.mutate({ key: 'prompt_hard_limit', value: 8 });
    try {
      const requestsBefore = gw.gateway.mock!.stats().total.requests;
      const error = await refusal(client.chat.complete.mutate(chat('one two three four five six seven eight nine ten eleven twelve')));
      expect(error.data?.code).toBe('BAD_REQUEST');
      expect(gw.gateway.mock!.stats().total.requests).toBe(requestsBefore);
    } finally {
      await adminClient.config.set.mutate({ key: 'prompt_hard_limit', value: 10_000 });
      await adminClient.config.set.mutate({ key: 'prompt_soft_limit', value: 5_000 });
    }
  });
});

describe('cost and usage', () => {
  it('puts estimated and actual cost in the answer and the ledger, by hand-computed prices', async () => {
    const carol = await gw.token('carol');
    const client = gw.trpc(carol);
    const answer = await client.chat.complete.mutate(chat('price this'));
    const { inputTokens, outputTokens } = answer.usage!;
    // gpt-4o: $2.50 in, $10 out per million tokens; markup 30%.
    const expected = Math.round((((inputTokens * 2.5 + outputTokens * 10) / 1e6) * 1.3) * 1e9) / 1e9;
    expect(answer.cost?.actualUsd).toBeCloseTo(expected, 9);
    expect(answer.cost!.estimatedUsd).toBeGreaterThan(0);
    const mine = await client.usage.mine.query();
    expect(mine.requests).toBe(1);
    expect(mine.inputTokens).toBe(inputTokens);
    expect(mine.costUsd).toBeCloseTo(expected, 9);
    const all = await gw.trpc(admin).usage.byUser.query();
    expect(all.find((u) => u.userId === 'carol')?.requests).toBe(1);
    expect((await refusal(client.usage.byUser.query())).data?.code).toBe('FORBIDDEN');
  });

  it('refuses a user over their daily budget with TOO_MANY_REQUESTS and a retry time', async () => {
    const dave = await gw.token('dave');
    await gw.trpc(admin).users.setLimits.mutate({ userId: 'dave', limits: { dailyBudgetUsd: 0 } });
    const error = await refusal(gw.trpc(dave).chat.complete.mutate(chat()));
    expect(error.data?.code).toBe('TOO_MANY_REQUESTS');
    expect(error.data?.retryAfterMs).toBeGreaterThan(0);
  });
});

describe('per-user RPM across two instances sharing Redis', () => {
  it('counts one window for both', async () => {
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `kr-test-usage-${process.pid}-${Date.now()}` };
    const one = await startTestGateway({ env });
    const two = await startTestGateway({ env });
    try {
      await one.trpc(await one.token('root', 'admin')).users.setLimits.mutate({ userId: 'erin', limits: { rpm: 2 } });
      const erinOne = one.trpc(await one.token('erin'));
      const erinTwo = two.trpc(await two.token('erin'));
      await erinOne.chat.complete.mutate(chat());
      await erinTwo.chat.complete.mutate(chat());
      const error = await refusal(erinOne.chat.complete.mutate(chat()));
      expect(error.data?.code).toBe('TOO_MANY_REQUESTS');
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });
});

describe('secrets', () => {
  it('no BYOK key reached a log line or the store', () => {
    const logs = logLines.join('');
    for (const key of [ALICE_KEY, BOB_KEY]) {
      expect(logs).not.toContain(key);
      expect(logs).not.toContain(key.slice(-12));
    }
    const dump = JSON.stringify((gw.gateway.docStore as unknown as { dump?: () => unknown }).dump?.() ?? {});
    for (const key of [ALICE_KEY, BOB_KEY]) expect(dump).not.toContain(key);
    expect(fingerprintOf(ALICE_KEY)).not.toContain(ALICE_KEY);
  });
});

describe('BYOK without ENCRYPTION_KEY outside demo mode', () => {
  it('is off: adding a key is refused with PRECONDITION_FAILED, and the log says why', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) }) });
    // A real (fake) provider key: not demo mode, so no per-process key is made up.
    await using off = await startTestGateway({ env: { OPENAI_API_KEY_1: 'sk-test-byok-off-0123456789abcdef' }, logger });
    const carol = off.trpc(await off.token('carol'));
    const refused = await refusal(carol.byok.add.mutate({ provider: 'openai', apiKey: ALICE_KEY }));
    expect(refused.data?.code).toBe('PRECONDITION_FAILED');
    expect(refused.message).toMatch(/ENCRYPTION_KEY/);
    expect(await carol.byok.list.query()).toEqual([]);
    expect(lines.some((l) => l.includes('BYOK is off'))).toBe(true);
    expect(lines.join('')).not.toContain(ALICE_KEY);
  });
});
