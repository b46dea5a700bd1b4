import type pg from 'pg';
import { BUSINESS_SETTING_KEYS, type BusinessConfigDocument, type ModelEntry } from '../../shared/business';
import type { BusinessConfigRecords } from '../business/BusinessConfigRecords';
import { assertNoSecrets } from '../store/secretGuard';
import { inTransaction, type Queryable } from './inTransaction';

/**
 * BusinessConfig's records in PostgreSQL (`system_config`, `ai_models`: migrations/0001_business.ts).
 * The secret guard runs on every value before its statement is sent, as the DocStores run it:
 * a refused value writes nothing (and in the seed, nothing at all).
 */

/** The system_config row written with the defaults, once: present = seeded. */
export const SEEDED_KEY = 'seeded_at';

export function createPgBusinessRecords(pool: pg.Pool): BusinessConfigRecords {
  return {
    kind: 'postgres',
    async seed(document: BusinessConfigDocument) {
      // Every value checked before the transaction starts: a refused one writes nothing.
      for (const key of BUSINESS_SETTING_KEYS) assertNoSecrets(`system_config.${key}`, document.settings[key]);
      for (const model of document.models) assertNoSecrets('ai_models', model);
      return inTransaction(pool, async (client) => {
        // Concurrent seeders queue on the key's unique index: the first commits, the others find
        // the row and write nothing. A seeder that fails rolls the marker back with the rest.
        if (!(await insertSeededMarker(client))) return false;
        for (const key of BUSINESS_SETTING_KEYS) await upsertSetting(client, key, document.settings[key]);
        for (const model of document.models) await upsertModel(client, model);
        return true;
      });
    },
    async read() {
      // Two statements in parallel, not one snapshot: a change landing between them is announced,
      // which drops the snapshot made of them, and the next load reads both again.
      const [settings, models] = await Promise.all([pool.query<{ key: string; value: unknown }>('SELECT key, value FROM system_config'), selectModels(pool)]);
      const map = new Map(settings.rows.map((row) => [row.key, row.value]));
      const seeded = map.delete(SEEDED_KEY);
      return { seeded, settings: map, models };
    },
    async settings() {
      const { rows } = await pool.query<{ key: string; value: unknown }>('SELECT key, value FROM system_config WHERE key <> $1', [SEEDED_KEY]);
      return new Map(rows.map((row) => [row.key, row.value]));
    },
    async setSetting(key, value) {
      await upsertSetting(pool, key, value);
    },
    async model(id) {
      return (await selectModels(pool, id))[0] ?? null;
    },
    async modelIds() {
      const { rows } = await pool.query<{ id: string }>('SELECT id FROM ai_models');
      return new Set(rows.map((row) => row.id));
    },
    async putModel(model) {
      await upsertModel(pool, model);
    },
    async putModelIfPresent(model) {
      assertNoSecrets('ai_models', model);
      const { rowCount } = await pool.query(
        `UPDATE ai_models SET (provider, display_name, upstream_model, input_price, output_price, is_active, fallbacks, capabilities, extra, updated_at)
           = ($2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, now()) WHERE id = $1`,
        modelParams(model),
      );
      return rowCount === 1;
    },
  };
}

/** The seeded marker, unless there is one. True when it wrote. */
export async function insertSeededMarker(db: Queryable, at = new Date()): Promise<boolean> {
  const { rowCount } = await db.query(`INSERT INTO system_config (key, value) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO NOTHING`, [SEEDED_KEY, JSON.stringify({ at: at.toISOString() })]);
  return rowCount === 1;
}

/** Writes a setting unless it already holds this value; true when it wrote. Guarded. */
export async function upsertSetting(db: Queryable, key: string, value: unknown): Promise<boolean> {
  assertNoSecrets(`system_config.${key}`, value);
  const { rowCount } = await db.query(
    `INSERT INTO system_config (key, value) VALUES ($1, $2::jsonb)
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now() WHERE system_config.value IS DISTINCT FROM EXCLUDED.value`,
    [key, JSON.stringify(value)],
  );
  return rowCount === 1;
}

/** Inserts or replaces a model unless it already holds exactly this; true when it wrote. Guarded. */
export async function upsertModel(db: Queryable, model: ModelEntry): Promise<boolean> {
  assertNoSecrets('ai_models', model);
  const { rowCount } = await db.query(
    `INSERT INTO ai_models (id, provider, display_name, upstream_model, input_price, output_price, is_active, fallbacks, capabilities, extra)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)
     ON CONFLICT (id) DO UPDATE SET provider = EXCLUDED.provider, display_name = EXCLUDED.display_name, upstream_model = EXCLUDED.upstream_model,
       input_price = EXCLUDED.input_price, output_price = EXCLUDED.output_price, is_active = EXCLUDED.is_active, fallbacks = EXCLUDED.fallbacks,
       capabilities = EXCLUDED.capabilities, extra = EXCLUDED.extra, updated_at = now()
     WHERE (ai_models.provider, ai_models.display_name, ai_models.upstream_model, ai_models.input_price, ai_models.output_price, ai_models.is_active, ai_models.fallbacks, ai_models.capabilities, ai_models.extra)
       IS DISTINCT FROM (EXCLUDED.provider, EXCLUDED.display_name, EXCLUDED.upstream_model, EXCLUDED.input_price, EXCLUDED.output_price, EXCLUDED.is_active, EXCLUDED.fallbacks, EXCLUDED.capabilities, EXCLUDED.extra)`,
    modelParams(model),
  );
  return rowCount === 1;
}

interface ModelRow {
  id: string;
  provider: string;
  display_name: string;
  upstream_model: string | null;
  input_price: string;
  output_price: string;
  is_active: boolean;
  fallbacks: string[];
  capabilities: unknown;
  extra: Record<string, unknown>;
}

async function selectModels(db: Queryable, id?: string): Promise<unknown[]> {
  const { rows } = await db.query<ModelRow>(
    `SELECT id, provider, display_name, upstream_model, input_price, output_price, is_active, fallbacks, capabilities, extra FROM ai_models${id === undefined ? '' : ' WHERE id = $1'}`,
    id === undefined ? [] : [id],
  );
  return rows.map(entryOf);
}

/**
 * A ModelEntry's columns. Fields no column names (whatever modelEntrySchema grows) go to
 * `extra`, `capabilities` to its own column, so every entry round-trips. A `capabilities` of
 * JSON null goes to `extra`: SQL NULL in the column means the entry has none.
 */
function modelParams(model: ModelEntry): unknown[] {
  const { id, provider, display_name, upstream_model, input_price, output_price, is_active, fallbacks, ...rest } = model;
  const { capabilities, ...extra } = rest as Record<string, unknown>;
  if (capabilities === null) extra.capabilities = null;
  // Prices as their shortest decimal text: numeric keeps exactly that, and Number() gives it back.
  return [id, provider, display_name, upstream_model ?? null, String(input_price), String(output_price), is_active, fallbacks, capabilities === undefined || capabilities === null ? null : JSON.stringify(capabilities), JSON.stringify(extra)];
}

/** The stored entry as the DocStore held it (BusinessConfig validates it). */
function entryOf(row: ModelRow): unknown {
  return {
    ...row.extra,
    id: row.id,
    provider: row.provider,
    display_name: row.display_name,
    ...(row.upstream_model === null ? {} : { upstream_model: row.upstream_model }),
    input_price: Number(row.input_price),
    output_price: Number(row.output_price),
    is_active: row.is_active,
    fallbacks: row.fallbacks,
    ...(row.capabilities === null ? {} : { capabilities: row.capabilities }),
  };
}
