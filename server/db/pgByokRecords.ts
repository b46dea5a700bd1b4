import type pg from 'pg';
import type { ByokSettings } from '../../shared/byok';
import type { ByokRecordToWrite, ByokRecords } from '../byok/ByokRecords';
import { assertNoSecrets } from '../store/secretGuard';
import type { Queryable } from './inTransaction';

/**
 * The BYOK vault's records in PostgreSQL (`user_api_keys`, `user_byok_settings`:
 * migrations/0001_business.ts). A key is only ever its `Sealed` envelope (jsonb `sealed`); the
 * secret guard checks every record and setting before its statement is sent (the envelope is
 * let through by its type, the label and the rest are checked). A record's rotation index is
 * the table itself: `users()` is the distinct user ids holding rows.
 */
export function createPgByokRecords(pool: pg.Pool): ByokRecords {
  return {
    kind: 'postgres',
    async list(userId) {
      const { rows } = await pool.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM user_api_keys WHERE user_id = $1`, [userId]);
      return rows.map(recordOf);
    },
    async get(userId, id) {
      const { rows } = await pool.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM user_api_keys WHERE user_id = $1 AND id = $2`, [userId, id]);
      return rows[0] ? recordOf(rows[0]) : null;
    },
    async add(userId, record) {
      assertNoSecrets('user_api_keys', record);
      await pool.query(
        `INSERT INTO user_api_keys (user_id, id, provider, label, mask, created_at, last_test_result, last_test_at, sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)`,
        recordParams(userId, record),
      );
    },
    async replaceIfPresent(userId, id, record) {
      assertNoSecrets('user_api_keys', record);
      const params = recordParams(userId, record);
      params[1] = id;
      const { rowCount } = await pool.query(
        `UPDATE user_api_keys SET (provider, label, mask, created_at, last_test_result, last_test_at, sealed, updated_at)
           = ($3, $4, $5, $6, $7, $8, $9::jsonb, now()) WHERE user_id = $1 AND id = $2`,
        params,
      );
      return rowCount === 1;
    },
    async remove(userId, id) {
      const { rowCount } = await pool.query('DELETE FROM user_api_keys WHERE user_id = $1 AND id = $2', [userId, id]);
      return rowCount === 1;
    },
    async settings(userId) {
      const { rows } = await pool.query<{ settings: unknown }>('SELECT settings FROM user_byok_settings WHERE user_id = $1', [userId]);
      return rows[0]?.settings ?? null;
    },
    async setSettings(userId, settings) {
      await upsertByokSettings(pool, userId, settings);
    },
    async users() {
      const { rows } = await pool.query<{ user_id: string }>('SELECT DISTINCT user_id FROM user_api_keys');
      return rows.map((row) => row.user_id);
    },
  };
}

/** Writes a record unless it is already stored exactly so (ciphertext as is); true when it wrote. Guarded. */
export async function upsertByokRecord(db: Queryable, userId: string, record: ByokRecordToWrite): Promise<boolean> {
  assertNoSecrets('user_api_keys', record);
  const { rowCount } = await db.query(
    `INSERT INTO user_api_keys (user_id, id, provider, label, mask, created_at, last_test_result, last_test_at, sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
     ON CONFLICT (user_id, id) DO UPDATE SET provider = EXCLUDED.provider, label = EXCLUDED.label, mask = EXCLUDED.mask, created_at = EXCLUDED.created_at,
       last_test_result = EXCLUDED.last_test_result, last_test_at = EXCLUDED.last_test_at, sealed = EXCLUDED.sealed, updated_at = now()
     WHERE (user_api_keys.provider, user_api_keys.label, user_api_keys.mask, user_api_keys.created_at, user_api_keys.last_test_result, user_api_keys.last_test_at, user_api_keys.sealed)
       IS DISTINCT FROM (EXCLUDED.provider, EXCLUDED.label, EXCLUDED.mask, EXCLUDED.created_at, EXCLUDED.last_test_result, EXCLUDED.last_test_at, EXCLUDED.sealed)`,
    recordParams(userId, record),
  );
  return rowCount === 1;
}

/** Writes a user's settings unless they already hold this; true when it wrote. Guarded. */
export async function upsertByokSettings(db: Queryable, userId: string, settings: ByokSettings): Promise<boolean> {
  assertNoSecrets('user_byok_settings', settings);
  const { rowCount } = await db.query(
    `INSERT INTO user_byok_settings (user_id, settings) VALUES ($1, $2::jsonb)
     ON CONFLICT (user_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now() WHERE user_byok_settings.settings IS DISTINCT FROM EXCLUDED.settings`,
    [userId, JSON.stringify(settings)],
  );
  return rowCount === 1;
}

const RECORD_COLUMNS = 'id, provider, label, mask, created_at, last_test_result, last_test_at, sealed';

interface RecordRow {
  id: string;
  provider: string;
  label: string | null;
  mask: string;
  created_at: Date;
  last_test_result: string | null;
  last_test_at: Date | null;
  sealed: unknown;
}

function recordParams(userId: string, record: ByokRecordToWrite): unknown[] {
  return [
    userId,
    record.id,
    record.provider,
    record.label,
    record.mask,
    record.createdAt,
    record.lastTest?.result ?? null,
    record.lastTest?.at ?? null,
    // The envelope's JSON (Sealed.toJSON): ciphertext, IV, tag and key id, never a plaintext.
    JSON.stringify(record.sealed),
  ];
}

/** The record as the DocStore held it (the vault validates it). */
function recordOf(row: RecordRow): unknown {
  return {
    id: row.id,
    provider: row.provider,
    label: row.label,
    mask: row.mask,
    createdAt: row.created_at.toISOString(),
    lastTest: row.last_test_result === null ? null : { result: row.last_test_result, at: (row.last_test_at ?? row.created_at).toISOString() },
    sealed: row.sealed,
  };
}
