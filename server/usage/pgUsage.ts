import type pg from 'pg';
import type { UsageCursor, UsageDay, UsageModel, UserUsage } from '../../shared/usage';

/**
 * The usage ledger's SQL (issue 23): batches in, per-day rollups and limits out. Tables in
 * server/db/migrations/0002_usage.ts. Amounts are integer nano-USD and token counts, as bigint;
 * node-postgres returns bigint as text, read back with Number (exact below 2^53: 9 million USD of
 * one user's cost in a range, far beyond any budget the schema accepts).
 */

/** What the ledger needs of a pg.Pool; a test wraps it (to lose a commit's reply, or cut the line). */
export type UsagePool = Pick<pg.Pool, 'connect' | 'query'>;

/** One user-day(-model) of a batch. `model` is '' where the record did not say. */
export interface UsageRow {
  userId: string;
  date: string;
  model: string;
  provider: string | null;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costNano: number;
}

const NANO = 1e9;

/**
 * Applies one batch in one transaction, at most once per `batchId`: the id is inserted first
 * (ON CONFLICT DO NOTHING), so a batch already committed (a retry after its COMMIT reply was
 * lost) changes nothing and answers false. Then its events, then the rollup of exactly those
 * events (read back by batch id, so the rollup and the events cannot disagree).
 */
export async function commitUsageBatch(pool: UsagePool, batchId: string, rows: readonly UsageRow[]): Promise<boolean> {
  const client = await pool.connect();
  // A connection that dies between two of these queries (a server restart, a cut line) makes
  // the checked-out client emit 'error' with no query to fail: without a listener, an uncaught
  // exception. The next query fails instead, and the batch is retried.
  const ignore = () => {};
  client.on('error', ignore);
  let failed = false;
  try {
    await client.query('BEGIN');
    const claimed = await client.query('INSERT INTO usage_batches (batch_id) VALUES ($1) ON CONFLICT DO NOTHING', [batchId]);
    if (claimed.rowCount === 0) {
      await client.query('ROLLBACK');
      return false;
    }
    if (rows.length > 0) {
      await client.query(
        `INSERT INTO usage_events (batch_id, user_id, day, model, provider, requests, input_tokens, output_tokens, cost_nano)
         SELECT $1::text, * FROM unnest($2::text[], $3::date[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])`,
        [
          batchId,
          rows.map((r) => r.userId),
          rows.map((r) => r.date),
          rows.map((r) => r.model),
          rows.map((r) => r.provider),
          rows.map((r) => r.requests),
          rows.map((r) => r.inputTokens),
          rows.map((r) => r.outputTokens),
          rows.map((r) => r.costNano),
        ],
      );
      await client.query(
        `INSERT INTO usage_daily (user_id, day, model, requests, input_tokens, output_tokens, cost_nano)
         SELECT user_id, day, model, sum(requests), sum(input_tokens), sum(output_tokens), sum(cost_nano)
         FROM usage_events WHERE batch_id = $1 GROUP BY user_id, day, model
         ON CONFLICT (user_id, day, model) DO UPDATE SET
           requests = usage_daily.requests + excluded.requests,
           input_tokens = usage_daily.input_tokens + excluded.input_tokens,
           output_tokens = usage_daily.output_tokens + excluded.output_tokens,
           cost_nano = usage_daily.cost_nano + excluded.cost_nano,
           updated_at = now()`,
        [batchId],
      );
    }
    await client.query('COMMIT');
    return true;
  } catch (error) {
    failed = true;
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    // A client whose transaction failed may have a broken connection: not back into the pool.
    // A failed client is ended by the pool and may still report its broken line: keep listening.
    if (!failed) client.off('error', ignore);
    client.release(failed);
  }
}

/** Batch ids older than this are forgotten: a batch is retried only by the process holding it, within minutes. */
export async function pruneUsageBatches(pool: UsagePool, olderThanDays: number): Promise<void> {
  await pool.query(`DELETE FROM usage_batches WHERE created_at < now() - make_interval(days => $1)`, [olderThanDays]);
}

/** A user's cost on one day, in nano-USD (what the budget reservation counts). */
export async function dailySpentNano(pool: UsagePool, userId: string, date: string): Promise<number> {
  const { rows } = await pool.query<{ cost: string }>('SELECT coalesce(sum(cost_nano), 0)::text AS cost FROM usage_daily WHERE user_id = $1 AND day = $2::date', [userId, date]);
  return Number(rows[0]?.cost ?? 0);
}

interface DailyRow {
  user_id: string;
  day: string;
  model: string;
  requests: string;
  input_tokens: string;
  output_tokens: string;
  cost_nano: string;
}

const DAILY_COLUMNS = 'user_id, day::text AS day, model, requests::text, input_tokens::text, output_tokens::text, cost_nano::text';

/** One user's usage per day in the range, with the day per model where known. */
export async function usageOfUser(pool: UsagePool, userId: string, from: string, to: string): Promise<UserUsage> {
  const { rows } = await pool.query<DailyRow>(`SELECT ${DAILY_COLUMNS} FROM usage_daily WHERE user_id = $1 AND day BETWEEN $2::date AND $3::date ORDER BY day, model`, [userId, from, to]);
  return summarise(userId, rows);
}

/**
 * Every user's usage in the range, highest cost first (ties by user id, byte order), a page at a
 * time: `limit` users after `cursor` (keyset: the last row's cost and id), and the cursor of the
 * next page when there is one. Two queries: the page's users from the per-user totals, then
 * their rows.
 */
export async function usageByUser(pool: UsagePool, from: string, to: string, page: { limit?: number; cursor?: UsageCursor }): Promise<{ users: UserUsage[]; next: UsageCursor | null }> {
  const { rows: totals } = await pool.query<{ user_id: string; cost_text: string }>(
    `WITH totals AS (
       SELECT user_id, sum(cost_nano) AS cost FROM usage_daily WHERE day BETWEEN $1::date AND $2::date GROUP BY user_id
     )
     SELECT user_id, cost::text AS cost_text FROM totals
     WHERE $3::numeric IS NULL OR cost < $3::numeric OR (cost = $3::numeric AND user_id COLLATE "C" > $4::text COLLATE "C")
     ORDER BY totals.cost DESC, user_id COLLATE "C" ASC
     LIMIT $5`,
    [from, to, page.cursor ? String(page.cursor.costNano) : null, page.cursor?.userId ?? '', page.limit === undefined ? null : page.limit + 1],
  );
  const more = page.limit !== undefined && totals.length > page.limit;
  const chosen = more ? totals.slice(0, page.limit) : totals;
  if (chosen.length === 0) return { users: [], next: null };
  const { rows } = await pool.query<DailyRow>(`SELECT ${DAILY_COLUMNS} FROM usage_daily WHERE user_id = ANY($1::text[]) AND day BETWEEN $2::date AND $3::date ORDER BY day, model`, [
    chosen.map((t) => t.user_id),
    from,
    to,
  ]);
  const perUser = new Map<string, DailyRow[]>(chosen.map((t) => [t.user_id, []]));
  for (const row of rows) perUser.get(row.user_id)?.push(row);
  const users = chosen.map((t) => summarise(t.user_id, perUser.get(t.user_id) ?? []));
  const last = chosen.at(-1)!;
  return { users, next: more ? { costNano: Number(last.cost_text), userId: last.user_id } : null };
}

export async function readUserLimits(pool: UsagePool, userId: string): Promise<unknown> {
  const { rows } = await pool.query<{ limits: unknown }>('SELECT limits FROM user_limits WHERE user_id = $1', [userId]);
  return rows[0]?.limits;
}

/** `onlyIfAbsent`: keeps limits already there (a copy that must not override what an admin set since). */
export async function writeUserLimits(pool: UsagePool, userId: string, limits: unknown, onlyIfAbsent = false): Promise<void> {
  await pool.query(
    `INSERT INTO user_limits (user_id, limits) VALUES ($1, $2::jsonb) ON CONFLICT (user_id) DO ${onlyIfAbsent ? 'NOTHING' : 'UPDATE SET limits = excluded.limits, updated_at = now()'}`,
    [userId, JSON.stringify(limits)],
  );
}

/** Rows of one user (ordered by day, model) into the wire shape: totals, days, models where known. */
function summarise(userId: string, rows: readonly DailyRow[]): UserUsage {
  const days: UsageDay[] = [];
  let nano = 0;
  const totals = { requests: 0, inputTokens: 0, outputTokens: 0 };
  const dayNano = new Map<string, number>();
  for (const row of rows) {
    const requests = Number(row.requests);
    const inputTokens = Number(row.input_tokens);
    const outputTokens = Number(row.output_tokens);
    const costNano = Number(row.cost_nano);
    let day = days.at(-1);
    if (day?.date !== row.day) days.push((day = { date: row.day, requests: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 }));
    day.requests += requests;
    day.inputTokens += inputTokens;
    day.outputTokens += outputTokens;
    const dn = (dayNano.get(row.day) ?? 0) + costNano;
    dayNano.set(row.day, dn);
    day.costUsd = dn / NANO;
    if (row.model !== '') {
      const model: UsageModel = { model: row.model, requests, inputTokens, outputTokens, costUsd: costNano / NANO };
      (day.models ??= []).push(model);
    }
    totals.requests += requests;
    totals.inputTokens += inputTokens;
    totals.outputTokens += outputTokens;
    nano += costNano;
  }
  return { userId, ...totals, costUsd: nano / NANO, days };
}
