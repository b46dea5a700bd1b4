import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { runMigrations } from '../../server/db/migrate';
import type { Migration } from '../../server/db/migrations';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const migrations: Migration[] = [
  { id: '0001_a', sql: 'CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1);' },
  { id: '0002_b', sql: 'CREATE TABLE b (id int PRIMARY KEY)' },
];

describe('schema migrations (issue 23)', () => {
  it('two instances applying at once apply each migration exactly once', async () => {
    const other = new pg.Pool({ connectionString: db.url });
    try {
      const results = await Promise.all([runMigrations(db.pool, migrations), runMigrations(other, migrations)]);
      expect(results.map((r) => r.applied).sort((x, y) => y.length - x.length)).toEqual([['0001_a', '0002_b'], []]);
      expect((await db.pool.query('SELECT count(*)::int AS n FROM a')).rows[0].n).toBe(1);
      expect((await runMigrations(other, migrations)).applied).toEqual([]);
    } finally {
      await other.end();
    }
  });

  it('refuses a migration edited after it was applied, and a failed one leaves nothing behind', async () => {
    await expect(runMigrations(db.pool, [{ id: '0001_a', sql: 'CREATE TABLE a2 (id int)' }])).rejects.toThrow(/changed after it was applied/);
    await expect(runMigrations(db.pool, [...migrations, { id: '0003_bad', sql: 'CREATE TABLE c (id int); SELECT nonsense_column FROM c' }])).rejects.toThrow();
    const tables = await db.pool.query("SELECT to_regclass('c') AS c");
    expect(tables.rows[0].c).toBeNull();
    const ids = await db.pool.query('SELECT id FROM schema_migrations ORDER BY id');
    expect(ids.rows.map((r: { id: string }) => r.id)).toEqual(['0001_a', '0002_b']);
  });
});
