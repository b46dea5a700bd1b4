import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runMigrations } from '../../server/db/migrate';
import type { Logger } from '../../server/observability/logger';
import { createRedisDocStore } from '../../server/store/redisDocStore';
import { UsageLedger } from '../../server/usage/UsageLedger';
import { waitFor } from '../ops/waitFor';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/**
 * Issue 23: PostgreSQL going away and coming back under load loses no usage record and counts
 * none twice. The shared local server cannot be stopped, so the ledger reaches it through a TCP
 * proxy on 127.0.0.1 that the test cuts (every connection dropped, new ones refused) and restores.
 */

/** A TCP forwarder to `target` that can be cut and restored on the same port. */
async function startProxy(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number) => new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    async cut() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    restore: () => listen(port),
    async stop() {
      for (const s of sockets) s.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let db: TestDatabase;
let redis: Redis;
beforeAll(async () => {
  db = await createTestDatabase();
  await runMigrations(db.pool);
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await redis?.quit();
  await db?.drop();
});

describe('usage ledger and a PostgreSQL outage (issue 23)', () => {
  it('issue 23: PostgreSQL down and back under load loses no usage record and counts none twice', async () => {
    const target = new URL(db.url);
    const proxy = await startProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(db.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const pool = new pg.Pool({ connectionString: viaProxy.toString(), max: 4, connectionTimeoutMillis: 1_000 });
    pool.on('error', () => {}); // idle clients cut by the proxy
    const logged: { level: string; msg: string }[] = [];
    const log = (level: string) => (_obj: unknown, msg?: string) => void logged.push({ level, msg: msg ?? '' });
    const logger = { error: log('error'), warn: log('warn'), info: log('info'), debug: () => {} } as unknown as Logger;
    const ledger = new UsageLedger({ store: createRedisDocStore({ redis, prefix: `pgoutage-${randomUUID()}` }), pool, logger, writeBehindMs: 2, flushIntervalMs: null });
    const users = ['o-1', 'o-2', 'o-3', 'o-4', 'o-5'];
    let produced = 0;
    /** Records one request per turn of the event loop until `until` returns true. */
    const produce = async (until: () => boolean) => {
      while (!until()) {
        ledger.recordSoon(users[produced % users.length]!, { inputTokens: 3, outputTokens: 2, costUsd: 0.001, model: 'm' });
        produced += 1;
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const databaseDown = () => logged.some((l) => l.level === 'error' && l.msg.startsWith('usage database unreachable'));
    try {
      await produce(() => produced >= 150);
      await proxy.cut(); // mid-load: a batch may be in flight, its COMMIT reply lost
      await produce(() => databaseDown() && produced >= 400);
      await ledger.flush();
      expect(ledger.pending).toBeGreaterThan(0); // queued, not lost
      await proxy.restore();
      await produce(() => produced >= 550);
      await waitFor(async () => (await ledger.flush(), ledger.pending === 0), 'the outbox drained');
      const { rows } = await db.pool.query<{ requests: string; input: string; cost: string }>(
        "SELECT sum(requests)::text AS requests, sum(input_tokens)::text AS input, sum(cost_nano)::text AS cost FROM usage_daily WHERE user_id LIKE 'o-%'",
      );
      expect(rows[0]).toEqual({ requests: String(produced), input: String(3 * produced), cost: String(produced * 1_000_000) });
      const events = await db.pool.query<{ n: string }>("SELECT sum(requests)::text AS n FROM usage_events WHERE user_id LIKE 'o-%'");
      expect(events.rows[0]!.n).toBe(String(produced));
      // Logged once per outage, and once when it ended.
      expect(logged.filter((l) => l.level === 'error' && l.msg.startsWith('usage database unreachable'))).toHaveLength(1);
      expect(logged.some((l) => l.level === 'info' && l.msg.startsWith('usage database answers again'))).toBe(true);
    } finally {
      await ledger.close();
      await pool.end();
      await proxy.stop();
    }
  });
});
