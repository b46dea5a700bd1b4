import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseGatewayEnv } from '../../server/config/env';
import { createLogger } from '../../server/observability/logger';
import { baseEnvOf, createEnvReloader, type ReloadReport } from '../../server/ops/envReloader';
import { KeyPool, poolConfigsFromEnv, type KeyLease } from '../../server/pool/KeyPool';
import { fingerprintOf, maskOf } from '../../server/pool/keyIdentity';
import { createMemoryStore } from '../../server/pool/stores/memoryStore';
import { createRedisStore } from '../../server/pool/stores/redisStore';
import type { PoolStore } from '../../server/pool/types';
import { captureLines } from './waitFor';

const KEY_A = 'sk-test-reload-aaaaaaaaaaaa0001';
const KEY_B = 'sk-test-reload-bbbbbbbbbbbb0002';
const KEY_C = 'sk-test-reload-cccccccccccc0003';
const SECRETS = [KEY_A, KEY_B, KEY_C];
const BASE = { JWT_SECRET: 'test-jwt-secret-that-is-long-enough-0123', ENV_FILE: 'ignored-here' };

const redis = new Redis(inject('redisUrl'));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyrack-reload-'));
});
afterAll(async () => {
  await redis.quit();
  await rm(dir, { recursive: true, force: true });
});

function fileOf(lines: Record<string, string>): string {
  return Object.entries(lines).map(([name, value]) => `${name}=${value}`).join('\n') + '\n';
}

async function setUp(store: PoolStore, initial: Record<string, string>, baseEnv: Record<string, string> = BASE) {
  const envFile = join(dir, `${randomUUID()}.env`);
  await writeFile(envFile, fileOf(initial));
  const current = parseGatewayEnv({ ...initial, ...baseEnv });
  const pool = new KeyPool(store, { defaultCooldownMs: 60_000 });
  pool.setPools(poolConfigsFromEnv(current));
  const log = captureLines();
  const reloader = createEnvReloader({ pool, envFile, baseEnv, current, logger: createLogger({ destination: log.destination, level: 'debug' }) });
  return { pool, reloader, envFile, lines: log.lines };
}

async function lease(pool: KeyPool): Promise<KeyLease> {
  const result = await pool.acquire('openai');
  if (!result.ok) throw new Error(`no lease: ${result.reason}`);
  return result.lease;
}

function keyStatus(status: Awaited<ReturnType<KeyPool['status']>>, secret: string) {
  return status.providers.find((p) => p.provider === 'openai')?.keys.find((k) => k.fingerprint === fingerprintOf(secret));
}

function expectNoSecret(text: string): void {
  for (const secret of SECRETS) expect(text).not.toContain(secret);
}

const stores: [string, () => PoolStore][] = [
  ['memory store', () => createMemoryStore()],
  ['Redis store', () => createRedisStore({ redis, prefix: `test-reload-${randomUUID()}` })],
];

describe.each(stores)('environment reload with the %s', (_name, makeStore) => {
  it('adds new keys, removes deleted ones, and keeps counters and cooldowns of unchanged keys', async () => {
    const { pool, reloader, envFile, lines } = await setUp(makeStore(), { OPENAI_API_KEY_1: KEY_A, OPENAI_API_KEY_2: KEY_B, OPENAI_RPM_PER_KEY: '10' });
    const onA = await lease(pool);
    const onB = await lease(pool);
    expect([onA.secret, onB.secret]).toEqual([KEY_A, KEY_B]);
    await pool.report(onB, { kind: 'rate_limited', retryAfterMs: 120_000 });

    // A leaked: drop it, add C. B is unchanged and must stay cooling with its request counted.
    await writeFile(envFile, fileOf({ OPENAI_API_KEY_2: KEY_B, OPENAI_API_KEY_3: KEY_C, OPENAI_RPM_PER_KEY: '10' }));
    const report = await reloader.reload();
    expect(report).toEqual({
      ok: true,
      providers: [
        {
          provider: 'openai',
          added: [{ fingerprint: fingerprintOf(KEY_C), mask: maskOf(KEY_C) }],
          removed: [{ fingerprint: fingerprintOf(KEY_A), mask: maskOf(KEY_A) }],
          unchanged: [{ fingerprint: fingerprintOf(KEY_B), mask: maskOf(KEY_B) }],
        },
      ],
      shadowed: [],
      restartRequired: [],
    });

    const status = await pool.status();
    expect(keyStatus(status, KEY_A)).toBeUndefined();
    expect(keyStatus(status, KEY_B)).toMatchObject({ status: 'cooling', reason: 'rate_limited', requestsThisWindow: 1 });
    expect(keyStatus(status, KEY_C)).toMatchObject({ status: 'ok', requestsThisWindow: 0 });
    // Only C serves now.
    expect((await lease(pool)).secret).toBe(KEY_C);
    expect((await lease(pool)).secret).toBe(KEY_C);

    // The request still running on A finishes: reporting on the removed key is harmless, whatever it says.
    await expect(pool.report(onA, { kind: 'success', tokens: 50 })).resolves.toBeUndefined();
    await expect(pool.report(onA, { kind: 'rejected' })).resolves.toBeUndefined();
    expect(keyStatus(await pool.status(), KEY_A)).toBeUndefined();

    // A comes back (it was not leaked after all): its history is still there, by fingerprint.
    await writeFile(envFile, fileOf({ OPENAI_API_KEY_1: KEY_A, OPENAI_API_KEY_2: KEY_B, OPENAI_API_KEY_3: KEY_C, OPENAI_RPM_PER_KEY: '10' }));
    const again = await reloader.reload();
    expect(again.ok && again.providers[0]!.added.map((k) => k.mask)).toEqual([maskOf(KEY_A)]);
    expect(keyStatus(await pool.status(), KEY_A)).toMatchObject({ status: 'ok', requestsThisWindow: 1 });

    expectNoSecret(JSON.stringify(report) + JSON.stringify(again) + lines.join(''));
  });

  it('refuses an invalid file, names the variables only, and changes nothing', async () => {
    const { pool, reloader, envFile, lines } = await setUp(makeStore(), { OPENAI_API_KEY_1: KEY_A });
    await writeFile(envFile, fileOf({ OPENAI_API_KEY_1: KEY_B, OPENAI_API_KEY_2: KEY_B, OPENAI_RPM_PER_KEY: KEY_C }));
    const report = await reloader.reload();
    expect(report.ok).toBe(false);
    expect(!report.ok && report.problems.map((p) => p.variable).sort()).toEqual(['OPENAI_API_KEY_2', 'OPENAI_RPM_PER_KEY']);
    expect((await lease(pool)).secret).toBe(KEY_A);
    expect(reloader.current().providers.find((p) => p.provider === 'openai')!.keys.map((k) => k.secret)).toEqual([KEY_A]);

    await rm(envFile);
    expect(await reloader.reload()).toEqual({ ok: false, problems: [{ variable: 'ENV_FILE', problem: 'file not found' }] });
    expect((await lease(pool)).secret).toBe(KEY_A);
    expectNoSecret(JSON.stringify(report) + lines.join(''));
  });

  it('refuses a file with a line that is not NAME=value, by its number, without letting it swallow the next line', async () => {
    const { pool, reloader, envFile, lines } = await setUp(makeStore(), { OPENAI_API_KEY_1: KEY_A });
    // dotenv alone reads `TODO:` as a variable whose value is the whole next line: KEY_B's line would vanish.
    await writeFile(envFile, `OPENAI_API_KEY_1=${KEY_A}\nTODO: ${KEY_C}\nOPENAI_API_KEY_2=${KEY_B}\n`);
    const report = await reloader.reload();
    expect(report).toEqual({ ok: false, problems: [{ variable: 'ENV_FILE line 2', problem: 'is not NAME=value, a comment or blank; left out' }] });
    expect(reloader.current().providers.find((p) => p.provider === 'openai')!.keys.map((k) => k.secret)).toEqual([KEY_A]);
    expect((await lease(pool)).secret).toBe(KEY_A);
    expectNoSecret(JSON.stringify(report) + lines.join(''));
  });
});

describe('the base environment', () => {
  it('a key deleted from the file disappears even though start-up loaded it into process.env', async () => {
    const file = { OPENAI_API_KEY_1: KEY_A, OPENAI_API_KEY_2: KEY_B };
    // What dotenv.config() leaves in process.env: the shell's variables plus the file's.
    const processEnv = { ...BASE, PATH: '/usr/bin', ...file };
    const baseEnv = baseEnvOf(processEnv, fileOf(file)) as Record<string, string>;
    expect(Object.keys(baseEnv).sort()).toEqual(['ENV_FILE', 'JWT_SECRET', 'PATH']);

    const { pool, reloader, envFile } = await setUp(createMemoryStore(), file, baseEnv);
    await writeFile(envFile, fileOf({ OPENAI_API_KEY_2: KEY_B }));
    const report = await reloader.reload();
    expect(report.ok && report.providers[0]!.removed.map((k) => k.mask)).toEqual([maskOf(KEY_A)]);
    expect((await lease(pool)).secret).toBe(KEY_B);
  });

  it('a variable the process environment sets wins over the file, as at start-up, and is reported as shadowed', async () => {
    const { pool, reloader, envFile } = await setUp(createMemoryStore(), { OPENAI_API_KEY_2: KEY_B }, { ...BASE, OPENAI_API_KEY_1: KEY_A });
    await writeFile(envFile, fileOf({ OPENAI_API_KEY_1: KEY_C, OPENAI_API_KEY_2: KEY_B, PORT: '4000' }));
    const report: ReloadReport = await reloader.reload();
    expect(report).toMatchObject({ ok: true, shadowed: ['OPENAI_API_KEY_1'], restartRequired: ['PORT'] });
    expect((await lease(pool)).secret).toBe(KEY_A);
  });
});
