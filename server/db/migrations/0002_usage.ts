import type { Migration } from './index';

/**
 * The usage ledger and per-user limits (issue 23).
 *
 * `usage_events` is append-only: one row per user-day(-model) of a batch the ledger wrote, never
 * updated (the audit trail a bill can be rebuilt from). `usage_batches` makes a batch count once:
 * its id is inserted first, in the batch's own transaction, so a retry of a batch whose commit
 * reply was lost finds it and changes nothing. `usage_daily` is the rollup the admin queries read,
 * kept in the same transaction; `model` is '' where the record did not say (a primary key column
 * cannot be null). Amounts are integers: cost in nano-USD, as the Redis counters have them.
 */
export const usageMigration: Migration = {
  id: '0002_usage',
  sql: `
CREATE TABLE IF NOT EXISTS usage_batches (
  batch_id text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS usage_batches_created_at ON usage_batches (created_at);

CREATE TABLE IF NOT EXISTS usage_events (
  id bigserial PRIMARY KEY,
  batch_id text NOT NULL,
  user_id text NOT NULL,
  day date NOT NULL,
  model text NOT NULL DEFAULT '',
  provider text,
  requests bigint NOT NULL,
  input_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL,
  cost_nano bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS usage_events_batch_id ON usage_events (batch_id);
CREATE INDEX IF NOT EXISTS usage_events_user_day ON usage_events (user_id, day);

CREATE TABLE IF NOT EXISTS usage_daily (
  user_id text NOT NULL,
  day date NOT NULL,
  model text NOT NULL DEFAULT '',
  requests bigint NOT NULL DEFAULT 0,
  input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  cost_nano bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, day, model)
);
CREATE INDEX IF NOT EXISTS usage_daily_day ON usage_daily (day);

CREATE TABLE IF NOT EXISTS user_limits (
  user_id text PRIMARY KEY,
  limits jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
};
