import type { Migration } from './index';

/**
 * Business config, the model catalog and BYOK records (issue 23): tables close to the customer's
 * design (`system_config`, `ai_models`, `user_api_keys`), plus the per-user BYOK setting.
 *
 * What the columns hold is what the DocStore held, checked by the secret guard before every
 * write (server/db/pgBusinessRecords.ts, server/db/pgByokRecords.ts): no secret ever, the BYOK
 * key only as its AES-GCM envelope (`sealed`, the vault's Sealed JSON). User ids are stored as
 * they are: a column is not a field name, so the hex form of storeIds.ts is not needed here.
 *
 *  - system_config: one row per business setting (`prompt_soft_limit` -> 5000), plus the
 *    `seeded_at` row written in the same transaction as the defaults (seeded once, ever).
 *  - ai_models: one row per catalog model. `capabilities` and `extra` are jsonb so that fields
 *    the zod schema (shared/business.ts) grows round-trip without a migration: `capabilities`
 *    holds the entry's field of that name, `extra` any other field no column names.
 *  - user_api_keys: one row per BYOK record, keyed (user_id, id) exactly as the vault scopes them.
 *  - user_byok_settings: fallbackToSharedPool and whatever byokSettingsSchema grows, per user.
 */
export const businessMigration: Migration = {
  id: '0001_business',
  sql: `
CREATE TABLE system_config (
  key text PRIMARY KEY,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ai_models (
  id text PRIMARY KEY,
  provider text NOT NULL,
  display_name text NOT NULL,
  upstream_model text NULL,
  input_price numeric NOT NULL CHECK (input_price >= 0),
  output_price numeric NOT NULL CHECK (output_price >= 0),
  is_active boolean NOT NULL,
  fallbacks text[] NOT NULL DEFAULT '{}',
  capabilities jsonb NULL,
  extra jsonb NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_models_provider ON ai_models (provider);

CREATE TABLE user_api_keys (
  user_id text NOT NULL,
  id text NOT NULL,
  provider text NOT NULL,
  label text NULL,
  mask text NOT NULL,
  created_at timestamptz NOT NULL,
  last_test_result text NULL,
  last_test_at timestamptz NULL,
  sealed jsonb NOT NULL,
  key_id text GENERATED ALWAYS AS (sealed->>'kid') STORED,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, id)
);
CREATE INDEX user_api_keys_key_id ON user_api_keys (key_id);

CREATE TABLE user_byok_settings (
  user_id text PRIMARY KEY,
  settings jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
};
