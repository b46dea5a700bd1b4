import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { BusinessConfig, DEFAULT_BUSINESS_CONFIG } from '../../server/business/BusinessConfig';
import { BusinessConfigError } from '../../server/business/BusinessConfigError';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { SecretGuardError } from '../../server/store/secretGuard';
import { PROVIDER_IDS } from '../../shared';

const redisClients: Redis[] = [];
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  await Promise.all(closers.map((close) => close()));
  await Promise.all(redisClients.map((r) => r.quit()));
});
function redisStore(prefix: string) {
  const redis = new Redis(inject('redisUrl'));
  redisClients.push(redis);
  const store = createRedisDocStore({ redis, prefix });
  closers.push(() => store.close());
  return store;
}

async function fresh() {
  const config = new BusinessConfig({ store: createMemoryDocStore() });
  await config.init();
  return config;
}

describe('BusinessConfig', () => {
  it('seeds the defaults once: a second start keeps admin changes', async () => {
    const store = createMemoryDocStore();
    const first = new BusinessConfig({ store });
    expect(await first.init()).toEqual({ seeded: true });
    await first.setConfig('markup_percentage', 45);
    const second = new BusinessConfig({ store });
    expect(await second.init()).toEqual({ seeded: false });
    expect((await second.getSettings()).markup_percentage).toBe(45);
  });

  it('issue 24.10: a seeding that fails midway leaves no marker over a partial catalog; the next start seeds it all', async () => {
    for (const store of [createMemoryDocStore(), redisStore(`test-business-seed-${randomUUID()}`)]) {
      const [firstModel, ...rest] = DEFAULT_BUSINESS_CONFIG.models;
      // The last model's entry is refused by the secret guard after the others were (before the fix) written.
      const broken = { ...DEFAULT_BUSINESS_CONFIG, models: [firstModel!, ...rest.slice(0, -1), { ...rest.at(-1)!, display_name: 'sk-test-abcdefghijklmnopqrstuvwxyz012345' }] };
      const failing = new BusinessConfig({ store, defaults: broken });
      await expect(failing.init()).rejects.toBeInstanceOf(SecretGuardError);
      await failing.close();
      expect(await store.getJson('business:seeded')).toBeNull();
      expect(await store.mapSize('business:models')).toBe(0);
      expect(await store.mapSize('business:settings')).toBe(0);
      const next = new BusinessConfig({ store });
      expect(await next.init()).toEqual({ seeded: true });
      expect((await next.getConfig()).models).toHaveLength(DEFAULT_BUSINESS_CONFIG.models.length);
      await next.close();
    }
  });

  it('ships the documented defaults and at least one model for every provider', async () => {
    const config = await fresh();
    expect(await config.getSettings()).toEqual({ prompt_soft_limit: 5000, prompt_hard_limit: 10000, expected_output_tokens: 1000, markup_percentage: 30 });
    const providers = new Set((await config.list()).map((m) => m.provider));
    expect([...providers].sort()).toEqual([...PROVIDER_IDS].sort());
    // Every default fallback names a model in the list.
    const ids = new Set(DEFAULT_BUSINESS_CONFIG.models.map((m) => m.id));
    for (const m of DEFAULT_BUSINESS_CONFIG.models) for (const f of m.fallbacks) expect(ids.has(f), `${m.id} -> ${f}`).toBe(true);
  });

  it('validates each setting and the soft <= hard rule, with a typed error', async () => {
    const config = await fresh();
    await expect(config.setConfig('prompt_soft_limit', 20_000)).rejects.toMatchObject({ code: 'invalid', message: expect.stringContaining('prompt_hard_limit must be at least prompt_soft_limit') });
    await expect(config.setConfig('prompt_hard_limit', 4000)).rejects.toBeInstanceOf(BusinessConfigError);
    await expect(config.setConfig('markup_percentage', -1)).rejects.toMatchObject({ code: 'invalid' });
    await expect(config.setConfig('expected_output_tokens', 1.5)).rejects.toMatchObject({ code: 'invalid' });
    await expect(config.setConfig('prompt_soft_limit', 'many' as unknown as number)).rejects.toMatchObject({ code: 'invalid' });
    await expect(config.setConfig('no_such_key' as 'markup_percentage', 1)).rejects.toMatchObject({ code: 'invalid' });
    // Raise hard first, then soft: both valid in that order.
    await config.setConfig('prompt_hard_limit', 30_000);
    expect(await config.setConfig('prompt_soft_limit', 20_000)).toMatchObject({ prompt_soft_limit: 20_000, prompt_hard_limit: 30_000 });
  });

  it('resolves active models by id and by provider/model; never passes unknown upstream models through', async () => {
    const config = await fresh();
    expect(await config.resolve('gpt-4o')).toMatchObject({ id: 'gpt-4o', provider: 'openai', upstreamModel: 'gpt-4o', inputPrice: 2.5, outputPrice: 10 });
    expect(await config.resolve('anthropic/claude-sonnet-4')).toMatchObject({ id: 'claude-sonnet-4', upstreamModel: 'claude-sonnet-4-20250514' });
    expect(await config.resolve('anthropic/claude-sonnet-4-20250514')).toMatchObject({ id: 'claude-sonnet-4' });
    expect(await config.resolve('groq/llama-3.3-70b-versatile')).toMatchObject({ id: 'llama-3.3-70b', provider: 'groq' });
    expect(await config.resolve('openai/claude-sonnet-4')).toBeNull(); // wrong provider
    expect(await config.resolve('openai/gpt-5-unlisted')).toBeNull(); // no price: not served
    expect(await config.resolve('nope/gpt-4o')).toBeNull();
    expect(await config.resolve('unknown')).toBeNull();
  });

  it('deactivated models no longer resolve or list; reactivation restores them', async () => {
    const config = await fresh();
    await config.setModelActive('grok-3', false);
    expect(await config.resolve('grok-3')).toBeNull();
    expect(await config.resolve('xai/grok-3')).toBeNull();
    expect((await config.list()).some((m) => m.id === 'grok-3')).toBe(false);
    expect((await config.getConfig()).models.find((m) => m.id === 'grok-3')?.is_active).toBe(false);
    await config.setModelActive('grok-3', true);
    expect(await config.resolve('grok-3')).not.toBeNull();
    await expect(config.setModelActive('missing', true)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('upserts models, checking fallbacks and refusing secrets in any field', async () => {
    const config = await fresh();
    await config.upsertModel({ id: 'my-model', provider: 'openai', upstream_model: 'gpt-4o-2024-11-20', display_name: 'Pinned 4o', input_price: 2.5, output_price: 10, is_active: true, fallbacks: ['gpt-4o-mini'] });
    expect(await config.resolve('my-model')).toMatchObject({ upstreamModel: 'gpt-4o-2024-11-20', fallbacks: ['gpt-4o-mini'] });
    await expect(config.upsertModel({ id: 'x', provider: 'openai', display_name: 'X', input_price: 1, output_price: 1, is_active: true, fallbacks: ['ghost'] })).rejects.toMatchObject({ code: 'invalid' });
    await expect(config.upsertModel({ id: 'x', provider: 'openai', display_name: 'X', input_price: 1, output_price: 1, is_active: true, fallbacks: ['x'] })).rejects.toMatchObject({ code: 'invalid' });
    await expect(config.upsertModel({ id: 'x', provider: 'nobody' as 'openai', display_name: 'X', input_price: 1, output_price: 1, is_active: true })).rejects.toMatchObject({ code: 'invalid' });
    await expect(config.upsertModel({ id: 'x', provider: 'openai', display_name: 'X', input_price: -1, output_price: 1, is_active: true })).rejects.toMatchObject({ code: 'invalid' });
    const secret = 'sk-test-0123456789abcdefghij';
    const leak = config.upsertModel({ id: 'leaky', provider: 'openai', display_name: secret.slice(0, 60), input_price: 1, output_price: 1, is_active: true });
    await expect(leak).rejects.toBeInstanceOf(SecretGuardError);
    await leak.catch((e: Error) => expect(e.message).not.toContain(secret));
    expect(await config.resolve('leaky')).toBeNull();
  });

  it('a change on one instance applies to the next request on another, and notifies it (shared Redis)', async () => {
    const prefix = `test-business-${randomUUID()}`;
    const a = new BusinessConfig({ store: redisStore(prefix) });
    const b = new BusinessConfig({ store: redisStore(prefix) });
    const seeds = await Promise.all([a.init(), b.init()]);
    expect(seeds.filter((s) => s.seeded)).toHaveLength(1);
    let notified!: () => void;
    const changed = new Promise<void>((resolve) => (notified = resolve));
    const unsubscribe = await b.onChange(notified);
    await a.setModelActive('gpt-4o', false);
    expect(await b.resolve('gpt-4o')).toBeNull(); // read-through: no wait needed
    await changed;
    await unsubscribe();
  });

  it('serves reads from a snapshot that a change notification from any instance drops (shared Redis)', async () => {
    const prefix = `test-business-${randomUUID()}`;
    const storeA = redisStore(prefix);
    const storeB = redisStore(prefix);
    const a = new BusinessConfig({ store: storeA });
    const b = new BusinessConfig({ store: storeB });
    await Promise.all([a.init(), b.init()]);
    expect(await b.resolve('gpt-4o')).not.toBeNull(); // b's snapshot is now warm
    let notified!: () => void;
    const changed = new Promise<void>((resolve) => (notified = resolve));
    const unsubscribe = await b.onChange(notified);
    await a.setModelActive('gpt-4o', false);
    expect(await a.resolve('gpt-4o')).toBeNull(); // the writer drops its own snapshot at once
    await changed; // b's own listener was registered first, so it already dropped the snapshot
    expect(await b.resolve('gpt-4o')).toBeNull();
    await unsubscribe();
    await Promise.all([a.close(), b.close()]);
  });

  it('reloads a snapshot older than maxAgeMs even without a notification', async () => {
    const store = createMemoryDocStore();
    let now = 0;
    const reader = new BusinessConfig({ store, maxAgeMs: 1000, clock: () => now });
    await reader.init();
    expect(await reader.resolve('gpt-4o')).not.toBeNull();
    // A writer whose notification never arrives: it writes the store directly.
    const entry = (await store.mapGet('business:models', 'gpt-4o')) as Record<string, unknown>;
    await store.mapSet('business:models', 'gpt-4o', { ...entry, is_active: false });
    expect(await reader.resolve('gpt-4o')).not.toBeNull(); // still the snapshot
    now = 1000;
    expect(await reader.resolve('gpt-4o')).toBeNull();
    await reader.close();
  });

  it('re-seeds the defaults when the shared store comes back empty (Redis restarted without persistence), once across instances', async () => {
    const prefix = `test-business-${randomUUID()}`;
    let now = 0;
    const reseeds: string[] = [];
    const a = new BusinessConfig({ store: redisStore(prefix), clock: () => now, onReseed: () => reseeds.push('a') });
    const b = new BusinessConfig({ store: redisStore(prefix), clock: () => now, onReseed: () => reseeds.push('b') });
    await Promise.all([a.init(), b.init()]);
    await a.setConfig('markup_percentage', 45);
    expect(await a.resolve('gpt-4o')).not.toBeNull();

    // What a Redis restart without persistence leaves: none of the business keys.
    const raw = new Redis(inject('redisUrl'));
    redisClients.push(raw);
    const keys = await raw.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    await raw.del(...keys);

    now = 5_000; // past maxAgeMs: both snapshots reload from the store
    const [fromA, fromB] = await Promise.all([a.resolve('gpt-4o'), b.resolve('gpt-4o')]);
    expect(fromA).toMatchObject({ id: 'gpt-4o' });
    expect(fromB).toMatchObject({ id: 'gpt-4o' });
    expect(reseeds).toHaveLength(1); // the marker is written first: one instance writes the defaults
    expect((await a.getSettings()).markup_percentage).toBe(DEFAULT_BUSINESS_CONFIG.settings.markup_percentage);
    expect(await raw.hlen(keys.find((k) => k.endsWith('{business}:models')) ?? `${prefix}:{business}:models`)).toBe(DEFAULT_BUSINESS_CONFIG.models.length);
    await Promise.all([a.close(), b.close()]);
  });
});
