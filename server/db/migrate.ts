import type pg from 'pg';
import { MIGRATIONS, type Migration } from './migrations';

/** Any fixed number: every instance takes the same lock, so one applies and the others wait. */
const MIGRATION_LOCK = 0x6b657972; // 'keyr'

/**
 * Applies the migrations this build knows and the database has not seen, in order, each in its
 * own transaction, under a session advisory lock: instances starting together apply each one
 * exactly once (the others wait, then find nothing to do). Migrations only add (tables, columns,
 * indexes): never destructive, so an older instance still running keeps working.
 *
 * A database that has applied a migration this build does not know (a newer build ran) is left
 * as it is; one whose recorded checksum differs from this build's is refused (edited history).
 */
export async function runMigrations(pool: pg.Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<{ applied: string[] }> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        id text PRIMARY KEY,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const { rows } = await client.query<{ id: string; checksum: string }>('SELECT id, checksum FROM schema_migrations');
      const done = new Map(rows.map((row) => [row.id, row.checksum]));
      const applied: string[] = [];
      for (const migration of migrations) {
        const checksum = checksumOf(migration.sql);
        const seen = done.get(migration.id);
        if (seen !== undefined) {
          if (seen !== checksum) throw new Error(`migration ${migration.id} was changed after it was applied (checksum differs)`);
          continue;
        }
        await client.query('BEGIN');
        try {
          await client.query(migration.sql);
          await client.query('INSERT INTO schema_migrations (id, checksum) VALUES ($1, $2)', [migration.id, checksum]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK');
          throw error;
        }
        applied.push(migration.id);
      }
      return { applied };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

/** FNV-1a of the SQL text: enough to notice an edited migration (not a security check). */
function checksumOf(sql: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < sql.length; i++) {
    hash ^= sql.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}
