import { randomUUID } from 'node:crypto';
import pg from 'pg';

/**
 * A throwaway PostgreSQL database per test file: created on the server DATABASE_URL names (or
 * the local one, postgres://postgres@127.0.0.1:5432/test), dropped afterwards.
 */
export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

export const POSTGRES_INSTALL_HINT =
  'PostgreSQL is not reachable. Keyrack tests need a real PostgreSQL server: install and start one with `apt-get install postgresql && pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (trust auth for 127.0.0.1), or set DATABASE_URL to a server whose user may create databases.';

const DEFAULT_SERVER_URL = 'postgres://postgres@127.0.0.1:5432/test';

export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = process.env.DATABASE_URL ?? DEFAULT_SERVER_URL;
  const admin = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 3_000 });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`${POSTGRES_INSTALL_HINT} (${(error as Error & { code?: string }).code ?? 'connect failed'})`);
  }
  const name = `keyrack_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 10 });
  return {
    url: url.toString(),
    pool,
    async drop() {
      // pool.end() resolves once its clients are told to end, not once their connections closed:
      // DROP ... WITH (FORCE) may terminate one still closing (57P01), and its idle listener then
      // re-emits that on the pool, unhandled without a listener here.
      pool.on('error', () => {});
      await pool.end();
      const cleaner = new pg.Client({ connectionString: serverUrl });
      await cleaner.connect();
      try {
        await cleaner.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await cleaner.end();
      }
    },
  };
}
