import { afterEach, describe, expect, it } from 'vitest';
import type { ProviderId } from '../../shared';
import type { ModelCatalog, ResolvedModel } from '../../server/business/types';
import { DEFAULT_BUSINESS_CONFIG } from '../../server/business/BusinessConfig';
import type { ByokVault } from '../../server/byok/ByokVault';
import { Dispatcher } from '../../server/dispatch/Dispatcher';
import type { PooledAnswer } from '../../server/dispatch/pooledCall';
import type { AcquireResult, DispatchKeyPool, KeyLease, LeaseOutcome } from '../../server/dispatch/types';
import { createMeteredCalls } from '../../server/gateway/meteredCalls';
import { silentLogger } from '../../server/observability/logger';
import { createMetrics } from '../../server/observability/metrics';
import { createShutdownCoordinator } from '../../server/ops/shutdown';
import { ProviderError } from '../../server/providers/ProviderError';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { UsageLedger, utcDateOf } from '../../server/usage/UsageLedger';

/**
 * issue 21: the metering around a pooled call (createMeteredCalls): the per-user limits and
 * budget reservation, the usage record at the catalog's price, a cut call billed for what it
 * produced, as chat's metering does.
 */

class OneKeyPool implements DispatchKeyPool {
  readonly reports: LeaseOutcome[] = [];
  async acquire(poolId: string): Promise<AcquireResult> {
    return { ok: true, lease: { poolId, provider: poolId as ProviderId, fingerprint: 'fp-1', mask: 'sk-…', secret: 'sk-test-one' } };
  }
  async report(_lease: KeyLease, outcome: LeaseOutcome): Promise<void> {
    this.reports.push(outcome);
  }
}

const CAPS = { tools: false, vision: false, json_schema: false, reasoning: false };
// $2 per million input tokens.
const MODEL: ResolvedModel = { id: 'embed-test', provider: 'openai', upstreamModel: 'e', displayName: 'E', inputPrice: 2, outputPrice: 0, fallbacks: [], capabilities: CAPS, kind: 'embedding' };
const catalog: ModelCatalog = { resolve: async (name) => (name === MODEL.id ? MODEL : null), list: async () => [MODEL] };
const noByok = { routing: async () => ({ providers: new Set(), fallbackToSharedPool: true }), getSecrets: async () => [] } as unknown as ByokVault;
const settings = { ...DEFAULT_BUSINESS_CONFIG.settings, markup_percentage: 0 };

const ledgers: UsageLedger[] = [];
afterEach(async () => {
  for (const l of ledgers.splice(0)) await l.close();
});

function setup() {
  const pool = new OneKeyPool();
  const ledger = new UsageLedger({ store: createMemoryDocStore(), logger: silentLogger });
  ledgers.push(ledger);
  const dispatcher = new Dispatcher({ pool, catalog, adapters: {}, logger: silentLogger, sleep: async () => {} });
  const calls = createMeteredCalls({
    inner: dispatcher,
    business: { getSettings: async () => settings, resolve: (name) => catalog.resolve(name) },
    ledger,
    vault: noByok,
    pool: { acquireFrom: async () => ({ ok: false, reason: 'no_keys', retryAfterMs: null }) },
    coordinator: createShutdownCoordinator(),
    metrics: createMetrics(),
    logger: silentLogger,
  });
  const today = utcDateOf(Date.now());
  const usage = async (user: string) => (await ledger.mine(user, { from: today, to: today })).days[0];
  return { pool, ledger, calls, usage };
}

const base = { model: 'embed-test', kind: 'embedding' as const, signal: new AbortController().signal, bound: { inputTokensAtMost: 1_000, outputTokensAtMost: 0 }, estimatedInputTokens: 250 };

describe('issue 21: metered pooled calls', () => {
  it('records the reported usage at the catalog price and answers the cost', async () => {
    const { calls, usage } = setup();
    const result = await calls.call({ ...base, userId: 'u1', attempt: async () => ({ value: 'v', usage: { inputTokens: 500_000, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0 } }) });
    expect(result).toMatchObject({ ok: true, value: 'v', cost: { actualUsd: 1, estimatedUsd: 0.0005 } });
    expect(await usage('u1')).toMatchObject({ requests: 1, inputTokens: 500_000, costUsd: 1 });
  });

  it('a spent budget is refused before any key is leased (budget_exceeded + retry time)', async () => {
    const { calls, ledger, pool } = setup();
    await ledger.setLimits('u2', { dailyBudgetUsd: 1 });
    // 500,000 tokens x $2 / M = the whole $1.
    expect(await calls.call({ ...base, userId: 'u2', attempt: async () => ({ value: 'v', usage: { inputTokens: 500_000, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0 } }) })).toMatchObject({ ok: true });
    const result = await calls.call({ ...base, userId: 'u2', attempt: async () => ({ value: 'v', usage: null }) });
    expect(result).toMatchObject({ ok: false, code: 'budget_exceeded', started: false });
    if (!result.ok) expect(result.retryAfterMs).toBeGreaterThan(0);
    expect(pool.reports).toHaveLength(1);
  });

  it('a call in flight holds its bound: a second one is refused while it runs, and admitted after', async () => {
    const { calls, ledger } = setup();
    await ledger.setLimits('u5', { dailyBudgetUsd: 1 });
    let finish!: () => void;
    let running!: () => void;
    const isRunning = new Promise<void>((resolve) => (running = resolve));
    const first = calls.call({
      ...base,
      userId: 'u5',
      bound: { inputTokensAtMost: 1_000_000, outputTokensAtMost: 0 },
      attempt: () => {
        running();
        return new Promise<PooledAnswer<string>>((resolve) => (finish = () => resolve({ value: 'v', usage: { inputTokens: 10, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0 } })));
      },
    });
    await isRunning;
    const refused = await calls.call({ ...base, userId: 'u5', attempt: async () => ({ value: 'v', usage: null }) });
    expect(refused).toMatchObject({ ok: false, code: 'budget_exceeded' });
    if (!refused.ok) expect(refused.message).toContain('in progress');
    finish();
    expect(await first).toMatchObject({ ok: true });
    // The record that replaces the hold is written behind (writeBehindMs): flushed here.
    await ledger.flush();
    expect(await calls.call({ ...base, userId: 'u5', attempt: async () => ({ value: 'v', usage: null }) })).toMatchObject({ ok: true });
  });

  it('the per-user RPM limit applies (rate_limited + retry time)', async () => {
    const { calls, ledger } = setup();
    await ledger.setLimits('u3', { rpm: 1 });
    const attempt = async () => ({ value: 'v', usage: null });
    expect(await calls.call({ ...base, userId: 'u3', attempt })).toMatchObject({ ok: true });
    const second = await calls.call({ ...base, userId: 'u3', attempt });
    expect(second).toMatchObject({ ok: false, code: 'rate_limited' });
    if (!second.ok) expect(second.retryAfterMs).toBeGreaterThan(0);
  });

  it('a call cut after it started is billed for what it produced and its hold is settled', async () => {
    const { calls, ledger, usage } = setup();
    await ledger.setLimits('u4', { dailyBudgetUsd: 100 });
    const result = await calls.call({
      ...base,
      userId: 'u4',
      producedOutputTokens: () => 40,
      attempt: async (a) => {
        a.started();
        throw new ProviderError({ kind: 'transient', message: 'cut' });
      },
    });
    expect(result).toMatchObject({ ok: false, code: 'stream_interrupted', started: true });
    expect(await usage('u4')).toMatchObject({ requests: 1, inputTokens: 250, outputTokens: 40, costUsd: 0.0005 });
  });
});
