import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import type { ModelEntryInput } from '../../shared/business';
import { maxCost } from '../../server/business/cost';
import { promptTokensAtMost } from '../../server/business/countPromptTokens';
import { waitFor } from '../ops/waitFor';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue 24, usage items over real HTTP: an absurd usage range is a quick 400 (24.2); a daily
 * budget holds under parallel requests on two instances (24.3); answers cut short are billed for
 * what they produced (24.4).
 */

const today = () => new Date().toISOString().slice(0, 10);
const usageOf = (gw: TestGateway, userId: string) => gw.gateway.deps.domain!.ledger.mine(userId, { from: today(), to: today() });

/** 400 mock words (one token each), so an answer is still running when it is cut. */
const LONG: ModelEntryInput = { id: 'long-answer', provider: 'openai', upstream_model: 'mock-chunks-400', display_name: 'Long answer', input_price: 2, output_price: 8, is_active: true, fallbacks: [] };

async function upsert(gw: TestGateway, model: ModelEntryInput): Promise<void> {
  await gw.trpc(await gw.token('root', 'admin')).models.upsert.mutate(model);
}

/** POSTs a streaming /v1 chat, reads `chunks` SSE chunks, then destroys the socket (the client went away). */
function readPartOfV1Stream(gw: TestGateway, token: string, model: string, chunks: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      let seen = 0;
      res.on('data', (data: Buffer) => {
        seen += data.toString().split('data: ').length - 1;
        if (seen >= chunks) {
          res.destroy();
          resolve(seen);
        }
      });
      res.on('end', () => reject(new Error(`the answer ended after ${seen} chunks, before the client left`)));
    });
    req.on('error', (error) => reject(error));
    req.end(JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'tell me a long story' }] }));
  });
}

describe('issue 24 on one instance', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ streams: { detachGraceMs: 50 } });
    await upsert(gw, LONG);
    gw.gateway.mock!.configure({ chunkDelayMs: 5 });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('issue 24.2: usage.mine / usage.byUser over 0000-01-01..9999-12-31 answer 400 at once, and /healthz stays responsive', async () => {
    const counters = vi.spyOn(gw.gateway.docStore, 'counters');
    const absurd = encodeURIComponent(JSON.stringify({ from: '0000-01-01', to: '9999-12-31' }));
    const user = { authorization: `Bearer ${await gw.token('alice')}` };
    const admin = { authorization: `Bearer ${await gw.token('root', 'admin')}` };
    const started = performance.now();
    const calls = [
      ...Array.from({ length: 4 }, () => fetch(`${gw.url}/trpc/usage.mine?input=${absurd}`, { headers: user })),
      fetch(`${gw.url}/trpc/usage.byUser?input=${absurd}`, { headers: admin }),
      fetch(`${gw.url}/trpc/usage.mine?input=${encodeURIComponent(JSON.stringify({ from: '2025-02-30', to: '2025-03-01' }))}`, { headers: user }),
    ];
    const health = fetch(`${gw.url}/healthz`);
    const answers = await Promise.all(calls);
    expect((await health).status).toBe(200);
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      const body = (await answer.json()) as { error: { data: { code: string } } };
      expect(body.error.data.code).toBe('BAD_REQUEST');
    }
    // Before the fix: 4.3 s of blocked event loop per call, then a 500. Refused before any work.
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(counters).not.toHaveBeenCalled();
    counters.mockRestore();
    // A valid range still answers.
    expect((await fetch(`${gw.url}/trpc/usage.mine?input=${encodeURIComponent(JSON.stringify({ from: '2024-01-01', to: '2024-12-31' }))}`, { headers: user })).status).toBe(200);
  });

  it('issue 24.4: a /v1 stream client that reads part of an answer and closes the socket is billed for it', async () => {
    const token = await gw.token('v1-leaver');
    const read = await readPartOfV1Stream(gw, token, 'long-answer', 20);
    expect(read).toBeGreaterThanOrEqual(20);
    await waitFor(async () => (await usageOf(gw, 'v1-leaver')).requests === 1, 'the cut answer recorded', 5_000);
    const usage = await usageOf(gw, 'v1-leaver');
    expect(usage.inputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeLessThan(400); // what was produced, not the whole answer
    expect(usage.costUsd).toBeGreaterThan(0);
  });

  it('issue 24.4: a tRPC stream whose tab closes mid-answer is billed for it', async () => {
    const client = gw.trpc(await gw.token('tab-closer'));
    const started = await client.chat.start.mutate({ model: 'long-answer', messages: [{ role: 'user', content: 'tell me a long story' }] });
    await new Promise<void>((resolve, reject) => {
      let deltas = 0;
      const subscription = client.chat.stream.subscribe(
        { streamId: started.streamId, lastEventId: started.events.at(-1)?.id ?? null },
        {
          onData: ({ data }) => {
            if (data.type === 'delta') deltas += 1;
            if (deltas === 10) {
              subscription.unsubscribe(); // the tab closes
              resolve();
            }
            if (data.type === 'done' || data.type === 'error') reject(new Error(`the answer ended (${data.type}) before the tab closed`));
          },
          onError: reject,
        },
      );
    });
    await waitFor(async () => (await usageOf(gw, 'tab-closer')).requests === 1, 'the cut answer recorded', 5_000);
    const usage = await usageOf(gw, 'tab-closer');
    expect(usage.outputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeLessThan(400);
    expect(usage.costUsd).toBeGreaterThan(0);
  });
});

describe('issue 24.4 at shutdown', () => {
  it('issue 24.4: an answer cut by shutting_down is billed for what it produced', async () => {
    const gw = await startTestGateway({ env: { SHUTDOWN_GRACE_MS: '50' } });
    try {
      await upsert(gw, LONG);
      gw.gateway.mock!.configure({ chunkDelayMs: 5 });
      const token = await gw.token('cut-by-shutdown');
      const events: string[] = [];
      const client = gw.trpc(token);
      const started = await client.chat.start.mutate({ model: 'long-answer', messages: [{ role: 'user', content: 'tell me a long story' }] });
      const ended = new Promise<void>((resolve) => {
        client.chat.stream.subscribe(
          { streamId: started.streamId, lastEventId: started.events.at(-1)?.id ?? null },
          {
            onData: ({ data }) => {
              events.push(data.type === 'error' ? `error:${data.code}` : data.type);
              if (data.type === 'error' || data.type === 'done') resolve();
            },
            onError: () => resolve(),
            onComplete: () => resolve(),
          },
        );
      });
      await waitFor(() => events.filter((e) => e === 'delta').length >= 10, 'ten deltas', 5_000);
      await gw.close();
      await ended;
      expect(events).toContain('error:shutting_down');
      // The ledger flushed at shutdown; the in-process store still holds what it wrote.
      const usage = await usageOf(gw, 'cut-by-shutdown');
      expect(usage.requests).toBe(1);
      expect(usage.outputTokens).toBeGreaterThan(0);
      expect(usage.costUsd).toBeGreaterThan(0);
    } finally {
      await gw.close();
    }
  });
});

describe('issue 24.3 on two instances sharing Redis', () => {
  it('issue 24.3: a $0.01 daily budget holds within one request of cost under 100 parallel requests over /v1 and tRPC', async () => {
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `kr-i24-budget-${process.pid}-${Date.now()}` };
    const one = await startTestGateway({ env });
    const two = await startTestGateway({ env });
    try {
      const pricey: ModelEntryInput = { id: 'budget-test', provider: 'openai', display_name: 'Budget test', input_price: 10, output_price: 50, is_active: true, fallbacks: [] };
      await upsert(one, pricey);
      const root = one.trpc(await one.token('root', 'admin'));
      await root.users.setLimits.mutate({ userId: 'spender', limits: { dailyBudgetUsd: 0.01 } });
      await waitFor(async () => (await two.gateway.business.resolve('budget-test')) !== null, 'the model on instance two');
      await waitFor(async () => (await two.gateway.deps.domain!.ledger.getLimits('spender')).dailyBudgetUsd === 0.01, 'the budget on instance two');

      const messages = [{ role: 'user' as const, content: 'spend my budget' }];
      const maxTokens = 40;
      const settings = await one.gateway.business.getSettings();
      const oneRequestAtMost = maxCost([{ provider: 'openai', inputPrice: 10, outputPrice: 50 }], promptTokensAtMost(messages), maxTokens, settings);

      const tokens = [await one.token('spender'), await two.token('spender')];
      const calls = Array.from({ length: 100 }, (_, i) => {
        const gw = i % 2 === 0 ? one : two;
        const token = tokens[i % 2]!;
        if (i % 4 < 2) return gw.openai(token).chat.completions.create({ model: 'budget-test', messages, max_tokens: maxTokens });
        return gw.trpc(token).chat.complete.mutate({ model: 'budget-test', messages, maxTokens });
      });
      const results = await Promise.allSettled(calls);
      const served = results.filter((r) => r.status === 'fulfilled').length;

      await waitFor(() => one.gateway.deps.domain!.ledger.pending === 0 && two.gateway.deps.domain!.ledger.pending === 0, 'both outboxes written');
      const spent = (await usageOf(one, 'spender')).costUsd;
      // Before the fix: every request was admitted (100 x ~$0.0013).
      expect(served).toBeGreaterThan(0);
      expect(served).toBeLessThan(100);
      expect(spent).toBeGreaterThan(0);
      expect(spent).toBeLessThanOrEqual(0.01 + oneRequestAtMost);
      expect((await usageOf(two, 'spender')).requests).toBe(served);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });
});
