import { inspect } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import { poolStatusSchema } from '../../shared';
import { parseGatewayEnv } from '../../server/config/env';
import { KeyPool, PoolConfigError, poolConfigsFromEnv, type PoolConfigInput } from '../../server/pool/KeyPool';
import { fingerprintOf, maskOf } from '../../server/pool/keyIdentity';
import { createMemoryStore } from '../../server/pool/stores/memoryStore';

const T0 = 1_700_000_000_000;
let now = T0;
const clock = () => now;

const SECRETS = ['sk-test-alpha-000000000001', 'sk-test-bravo-000000000002', 'sk-test-charlie-00000000003'];
const fp = SECRETS.map(fingerprintOf);

function openai(overrides: Partial<PoolConfigInput> = {}): PoolConfigInput {
  return {
    id: 'openai',
    provider: 'openai',
    strategy: 'round-robin',
    rpm: 10,
    tpm: 1_000,
    keys: SECRETS.map((secret) => ({ secret, account: null })),
    ...overrides,
  };
}

let pool: KeyPool;
beforeEach(() => {
  now = T0;
  pool = new KeyPool(createMemoryStore({ clock }), { defaultCooldownMs: 30_000, quotaCooldownMs: 3_600_000 });
  pool.setPools([openai()]);
});

async function leaseOf(poolId = 'openai') {
  const r = await pool.acquire(poolId);
  if (!r.ok) throw new Error(`expected a lease, got ${r.reason}`);
  return r.lease;
}

describe('KeyPool', () => {
  it('hands out leases in rotation, with secret, fingerprint and mask', async () => {
    const leases = [await leaseOf(), await leaseOf(), await leaseOf(), await leaseOf()];
    expect(leases.map((l) => l.secret)).toEqual([...SECRETS, SECRETS[0]]);
    expect(leases[1]).toEqual({ poolId: 'openai', provider: 'openai', fingerprint: fp[1], mask: maskOf(SECRETS[1]!), secret: SECRETS[1] });
    expect(pool.has('openai')).toBe(true);
    expect(pool.has('anthropic')).toBe(false);
  });

  it('refuses an unknown pool with no_keys', async () => {
    expect(await pool.acquire('anthropic')).toEqual({ ok: false, reason: 'no_keys', retryAfterMs: null });
  });

  it('a lease never prints its secret through JSON or inspect', async () => {
    const lease = await leaseOf();
    expect(JSON.stringify(lease)).not.toContain(lease.secret);
    expect(inspect(lease)).not.toContain(lease.secret);
    expect(JSON.stringify({ lease })).not.toContain(lease.secret);
  });

  it('a 429 without a retry time cools the key for the default cooldown; with one, for that long', async () => {
    const a = await leaseOf();
    await pool.report(a, { kind: 'rate_limited' });
    const b = await leaseOf();
    await pool.report(b, { kind: 'rate_limited', retryAfterMs: 2_000 });
    const keys = (await pool.status()).providers[0]!.keys;
    expect(keys.map((k) => [k.status, k.reason, k.until])).toEqual([
      ['cooling', 'rate_limited', T0 + 30_000],
      ['cooling', 'rate_limited', T0 + 2_000],
      ['ok', null, null],
    ]);
  });

  it('quota exhaustion cools for the quota cooldown', async () => {
    await pool.report(await leaseOf(), { kind: 'quota_exhausted' });
    expect((await pool.status()).providers[0]!.keys[0]).toMatchObject({ status: 'cooling', reason: 'quota_exhausted', until: T0 + 3_600_000 });
  });

  it('a rejected key stays out until an admin enables it', async () => {
    await pool.report(await leaseOf(), { kind: 'rejected' });
    for (let i = 0; i < 4; i++) expect((await leaseOf()).fingerprint).not.toBe(fp[0]);
    expect(await pool.setKeyEnabled('openai', fp[0]!, true)).toBe(true);
    expect(await pool.setKeyEnabled('openai', 'no-such-key', true)).toBe(false);
    expect(await pool.setKeyEnabled('nope', fp[0]!, true)).toBe(false);
    expect((await pool.status()).providers[0]!.keys[0]!.status).toBe('ok');
  });

  it('setPools keeps each key\'s state across a reload, by fingerprint', async () => {
    await pool.report(await leaseOf(), { kind: 'rejected' });
    pool.setPools([openai({ keys: [...SECRETS].reverse().map((secret) => ({ secret, account: null })) })]);
    const keys = (await pool.status()).providers[0]!.keys;
    expect(keys.map((k) => [k.fingerprint, k.status])).toEqual([
      [fp[2], 'ok'],
      [fp[1], 'ok'],
      [fp[0], 'disabled'],
    ]);
  });

  it('status: valid wire shape, masks, percentUsed, capacity over distinct usable accounts', async () => {
    pool.setPools([
      openai({
        keys: [
          { secret: SECRETS[0]!, account: 'org-a' },
          { secret: SECRETS[1]!, account: 'org-a' },
          { secret: SECRETS[2]!, account: null },
        ],
      }),
      { id: 'anthropic', provider: 'anthropic', strategy: 'least-loaded', rpm: 5, tpm: 0, keys: [] },
    ]);
    const a = await leaseOf(); // org-a
    await pool.report(a, { kind: 'success', tokens: 500 });
    await leaseOf(); // own account
    await leaseOf(); // org-a again (second key)
    const status = poolStatusSchema.parse(await pool.status());
    expect(status.at).toBe(T0);
    expect(status.windowMs).toBe(60_000);
    expect(status.providers.map((p) => p.provider)).toEqual(['openai']); // pools without keys are not listed
    const openaiStatus = status.providers[0]!;
    expect(openaiStatus.keys.map((k) => [k.mask, k.account, k.requestsThisWindow, k.tokensThisWindow, k.percentUsed])).toEqual([
      [maskOf(SECRETS[0]!), 'org-a', 2, 500, 50],
      [maskOf(SECRETS[1]!), 'org-a', 2, 500, 50],
      [maskOf(SECRETS[2]!), null, 1, 0, 10],
    ]);
    expect(openaiStatus.totals).toEqual({ keys: 3, ok: 3, cooling: 0, disabled: 0, requestsThisWindow: 3, capacityRpm: 8 + 9 });
  });

  it('BYOK: acquireFrom serves an unregistered pool, and report finds it by poolId', async () => {
    const byok: PoolConfigInput = {
      id: 'byok:user-1:openai',
      provider: 'openai',
      strategy: 'round-robin',
      rpm: 0,
      tpm: 0,
      keys: [{ secret: 'sk-test-user-own-key-0000001', account: null }],
    };
    const r = await pool.acquireFrom(byok);
    if (!r.ok) throw new Error('expected a lease');
    expect(r.lease).toMatchObject({ poolId: 'byok:user-1:openai', secret: 'sk-test-user-own-key-0000001' });
    await pool.report({ ...r.lease }, { kind: 'rejected' }); // a copied lease still reports
    expect(await pool.acquireFrom(byok)).toEqual({ ok: false, reason: 'no_keys', retryAfterMs: null });
    expect((await pool.statusOf(byok)).keys[0]).toMatchObject({ status: 'disabled', reason: 'rejected' });
    expect(pool.has('byok:user-1:openai')).toBe(false);
    expect((await pool.status()).providers).toHaveLength(1);
  });

  it('invalid configuration names the field and never echoes a key', () => {
    const bad = openai({ rpm: -1, keys: [{ secret: 'sk-test-leaky-0000000000', account: '' }] });
    let error: unknown;
    try {
      pool.setPools([bad]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PoolConfigError);
    expect(String((error as Error).message)).toContain('pools[0].rpm');
    expect(String((error as Error).message)).not.toContain('sk-test-leaky');
    expect(() => pool.setPools([openai(), openai()])).toThrow(/duplicate pool id/);
  });

  it('poolConfigsFromEnv: one pool per provider with keys, named after the provider', () => {
    const env = parseGatewayEnv({
      JWT_SECRET: 'x'.repeat(40),
      OPENAI_API_KEY_1: 'sk-test-env-one-00000000001',
      OPENAI_API_KEY_1_ACCOUNT: 'org-a',
      OPENAI_API_KEY_2: 'sk-test-env-two-00000000002',
      OPENAI_RPM_PER_KEY: '7',
      GROQ_API_KEY: 'gsk-test-env-groq-000000003',
      GROQ_STRATEGY: 'least-loaded',
    });
    expect(poolConfigsFromEnv(env)).toEqual([
      {
        id: 'openai',
        provider: 'openai',
        strategy: 'round-robin',
        rpm: 7,
        tpm: 30_000,
        keys: [
          { secret: 'sk-test-env-one-00000000001', account: 'org-a' },
          { secret: 'sk-test-env-two-00000000002', account: null },
        ],
      },
      { id: 'groq', provider: 'groq', strategy: 'least-loaded', rpm: 30, tpm: 6_000, keys: [{ secret: 'gsk-test-env-groq-000000003', account: null }] },
    ]);
  });
});
