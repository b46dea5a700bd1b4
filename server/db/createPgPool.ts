import type pg from 'pg';
import type { Logger } from '../observability/logger';

/**
 * The PostgreSQL connection pool for the database of record (DATABASE_URL): business config, the
 * model catalog, BYOK records and the usage ledger (issue 23). Redis keeps the hot state.
 *
 * Errors of idle clients (a server restart) are logged by code, never with the URL, which may
 * hold a password. `pg` is loaded here, on first use: a gateway without DATABASE_URL never loads
 * it (idle RSS is benchmarked, issue #8).
 */
export async function createPgPool(url: string, options: { logger?: Logger; max?: number; statementTimeoutMs?: number } = {}): Promise<pg.Pool> {
  const { default: pgModule } = await import('pg');
  const pool = new pgModule.Pool({
    connectionString: url,
    max: options.max ?? 10,
    // A query on the request path must not hang on a stalled server (cf. issue 24.8 for Redis).
    statement_timeout: options.statementTimeoutMs ?? 5_000,
    connectionTimeoutMillis: 2_000,
    idleTimeoutMillis: 30_000,
    application_name: 'keyrack',
  });
  pool.on('error', (error: Error & { code?: string }) => options.logger?.warn({ code: error.code ?? 'error' }, 'postgres: idle client failed'));
  return pool;
}

/** DATABASE_URL without its password, for log lines. */
export function redactedDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparsable)';
  }
}
