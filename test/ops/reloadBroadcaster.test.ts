import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, expect, inject, it } from 'vitest';
import { parseGatewayEnv, type GatewayEnv } from '../../server/config/env';
import { createEnvReloader } from '../../server/ops/envReloader';
import { createReloadBroadcaster } from '../../server/ops/reloadBroadcaster';
import { KeyPool, poolConfigsFromEnv } from '../../server/pool/KeyPool';
import { fingerprintOf } from '../../server/pool/keyIdentity';
import { createRedisStore } from '../../server/pool/stores/redisStore';

const KEY_LEAKED = 'sk-test-cluster-leaked-00000001';
const KEY_KEPT = 'sk-test-cluster-kept-0000000002';
const BASE = { JWT_SECRET: 'test-jwt-secret-that-is-long-enough-0123' };

const url = inject('redisUrl');
const connections: Redis[] = [];
function connect(): Redis {
  const redis = new Redis(url);
  connections.push(redis);
  return redis;
}
afterAll(async () => {
  await Promise.all(connections.map((c) => c.quit()));
});

it('one instance told to reload makes every instance on the same Redis reload', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'keyrack-cluster-'));
  const envFile = join(dir, '.env');
  await writeFile(envFile, `OPENAI_API_KEY_1=${KEY_LEAKED}\nOPENAI_API_KEY_2=${KEY_KEPT}\n`);
  const prefix = `test-broadcast-${randomUUID()}`;
  const data = connect();

  function instance(id: string) {
    const current = parseGatewayEnv({ ...BASE, OPENAI_API_KEY_1: KEY_LEAKED, OPENAI_API_KEY_2: KEY_KEPT });
    const pool = new KeyPool(createRedisStore({ redis: data, prefix }));
    pool.setPools(poolConfigsFromEnv(current));
    const applied: GatewayEnv[] = [];
    const waiters: (() => void)[] = [];
    const reloader = createEnvReloader({
      pool,
      envFile,
      baseEnv: BASE,
      current,
      onApplied: (env) => {
        applied.push(env);
        waiters.splice(0).forEach((w) => w());
      },
    });
    const broadcaster = createReloadBroadcaster({ subscriber: connect(), publisher: data, prefix, instanceId: id, reload: reloader.reload });
    const nextApply = () => new Promise<void>((resolve) => waiters.push(resolve));
    return { pool, reloader, broadcaster, applied, nextApply };
  }

  const a = instance('a');
  const b = instance('b');
  await a.broadcaster.start();
  await b.broadcaster.start();

  await writeFile(envFile, `OPENAI_API_KEY_2=${KEY_KEPT}\n`);
  const bApplied = b.nextApply();
  const report = await a.reloader.reload();
  expect(report.ok).toBe(true);
  expect(await a.broadcaster.announce()).toBe(true);
  await bApplied;

  for (const { pool } of [a, b]) {
    const keys = (await pool.status()).providers[0]!.keys.map((k) => k.fingerprint);
    expect(keys).toEqual([fingerprintOf(KEY_KEPT)]);
  }
  // The sender ignores its own message: it reloaded once, B once. (Each wait is registered
  // before the announce: the message can reach A before PUBLISH's reply reaches B.)
  const aApplied = a.nextApply();
  await b.broadcaster.announce();
  await aApplied;
  expect(a.applied).toHaveLength(2);
  expect(b.applied).toHaveLength(1);

  // Malformed messages are ignored, not crashed on.
  await data.publish(a.broadcaster.channel, 'not json');
  await data.publish(a.broadcaster.channel, JSON.stringify({ from: 42 }));
  const aAppliedAgain = a.nextApply();
  await b.broadcaster.announce();
  await aAppliedAgain;
  expect(a.applied).toHaveLength(3);

  await a.broadcaster.close();
  await b.broadcaster.close();
  await rm(dir, { recursive: true, force: true });
});
