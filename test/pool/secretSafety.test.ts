import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { expect, inject, it } from 'vitest';
import { createLogger } from '../../server/observability/logger';
import { KeyPool, type PoolConfigInput } from '../../server/pool/KeyPool';
import { createRedisStore } from '../../server/pool/stores/redisStore';

/**
 * Secrets stay in process memory: after a busy workload, no Redis command, stored value,
 * log line or status document contains any part of a key.
 */

const ENV_SECRETS = [
  'sk-test-safety-env-aaaaaaaaaaaaaaaa1',
  'sk-test-safety-env-bbbbbbbbbbbbbbbb2',
  'sk-test-safety-env-cccccccccccccccc3',
];
const BYOK_SECRET = 'sk-test-safety-byok-dddddddddddddd4';
/** Distinctive slices of each secret: a leak of part of a key counts too. */
const NEEDLES = [...ENV_SECRETS, BYOK_SECRET].flatMap((s) => [s, s.slice(8, 24), s.slice(-12)]);

it('no secret reaches Redis (commands or data), the logs or the status', async () => {
  const url = inject('redisUrl');
  const prefix = `test-safety-${randomUUID()}`;
  const redis = new Redis(url);
  const monitorClient = new Redis(url);
  const monitor = await monitorClient.monitor();
  const commands: string[] = [];
  const sentinel = `sentinel-${randomUUID()}`;
  const sawSentinel = new Promise<void>((resolve) =>
    monitor.on('monitor', (_time: string, args: string[]) => {
      commands.push(args.join(' '));
      if (args.includes(sentinel)) resolve();
    }),
  );
  const logLines: string[] = [];
  const logger = createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } });

  try {
    const pool = new KeyPool(createRedisStore({ redis, prefix }), { logger });
    const env: PoolConfigInput = {
      id: 'openai',
      provider: 'openai',
      strategy: 'least-loaded',
      rpm: 20,
      tpm: 5_000,
      keys: ENV_SECRETS.map((secret, i) => ({ secret, account: i < 2 ? 'org-shared' : null })),
    };
    const byok: PoolConfigInput = {
      id: 'byok:user-7:openai',
      provider: 'openai',
      strategy: 'round-robin',
      rpm: 0,
      tpm: 0,
      keys: [{ secret: BYOK_SECRET, account: null }],
    };
    pool.setPools([env]);

    const outcomes = [
      { kind: 'success', tokens: 120 },
      { kind: 'transient' },
      { kind: 'rate_limited', retryAfterMs: 5_000 },
      { kind: 'success', tokens: 40 },
      { kind: 'quota_exhausted' },
      { kind: 'rejected' },
    ] as const;
    for (let i = 0; i < 40; i++) {
      const r = i % 4 === 3 ? await pool.acquireFrom(byok) : await pool.acquire('openai');
      logger.info({ result: r }, 'acquired');
      if (r.ok) {
        logger.debug({ lease: r.lease }, 'lease detail');
        await pool.report(r.lease, outcomes[i % outcomes.length]!);
      }
    }
    const status = await pool.status();
    const byokStatus = await pool.statusOf(byok);
    const anyFingerprint = status.providers[0]!.keys[0]!.fingerprint;
    await pool.setKeyEnabled('openai', anyFingerprint, false);
    await pool.setKeyEnabled('openai', anyFingerprint, true);
    logger.info({ status, byokStatus }, 'status');

    await redis.echo(sentinel);
    await sawSentinel;

    const stored: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const type = await redis.type(key);
        const value =
          type === 'hash' ? await redis.hgetall(key)
          : type === 'zset' ? await redis.zrange(key, 0, -1, 'WITHSCORES')
          : type === 'string' ? await redis.get(key)
          : type === 'list' ? await redis.lrange(key, 0, -1)
          : type === 'set' ? await redis.smembers(key)
          : `unexpected type ${type}`;
        stored.push(`${key} ${JSON.stringify(value)}`);
      }
    } while (cursor !== '0');

    const haystacks = {
      commands: commands.join('\n'),
      stored: stored.join('\n'),
      logs: logLines.join(''),
      status: JSON.stringify([status, byokStatus]),
    };
    // The capture saw real traffic: fingerprints are there, secrets are not.
    expect(stored.length).toBeGreaterThan(3);
    expect(haystacks.commands).toContain(anyFingerprint);
    // The key with no account is its own account: its request log is named after its fingerprint.
    expect(haystacks.stored).toContain(status.providers[0]!.keys[2]!.fingerprint);
    expect(haystacks.logs).toContain('key rejected by provider');
    for (const [where, text] of Object.entries(haystacks)) {
      for (const needle of NEEDLES) expect(text.includes(needle), `${where} contains part of a secret`).toBe(false);
    }
  } finally {
    monitorClient.disconnect();
    await redis.quit();
  }
});
