import type pg from 'pg';
import type { BusinessConfigRecords } from '../business/BusinessConfigRecords';
import type { ByokRecords } from '../byok/ByokRecords';
import type { Logger } from '../observability/logger';
import { createPgPool, redactedDatabaseUrl } from './createPgPool';
import { runMigrations } from './migrate';
import { createPgBusinessRecords } from './pgBusinessRecords';
import { createPgByokRecords } from './pgByokRecords';

/** PostgreSQL as the database of record (DATABASE_URL): the pool and the records kept in it. */
export interface DatabaseOfRecord {
  pool: pg.Pool;
  business: BusinessConfigRecords;
  byok: ByokRecords;
  /** /readyz's database line: `ok` or `unreachable`. */
  ping(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Connects and applies the migrations this build knows (one instance applies them, the others
 * wait on the advisory lock; server/db/migrate.ts). A database that cannot be reached or migrated
 * stops start-up: serving defaults while the database of record is away would hide admin
 * changes and BYOK keys, then diverge from it. The error names the server, never its password.
 */
export async function openDatabaseOfRecord(url: string, options: { logger: Logger; max?: number }): Promise<DatabaseOfRecord> {
  const pool = await createPgPool(url, { logger: options.logger, ...(options.max !== undefined ? { max: options.max } : {}) });
  try {
    const { applied } = await runMigrations(pool);
    if (applied.length > 0) options.logger.info({ applied, database: redactedDatabaseUrl(url) }, 'postgres: schema migrations applied');
  } catch (error) {
    await pool.end().catch(() => {});
    const code = (error as Error & { code?: string }).code;
    throw new Error(`PostgreSQL at ${redactedDatabaseUrl(url)} (DATABASE_URL) is not usable${code ? ` (${code})` : ''}: ${error instanceof Error ? error.message : 'unknown error'}`);
  }
  return {
    pool,
    business: createPgBusinessRecords(pool),
    byok: createPgByokRecords(pool),
    ping: () => pool.query('SELECT 1').then(() => 'ok', () => 'unreachable'),
    close: () => pool.end(),
  };
}
