import { userLimitsSchema } from '../../shared/usage';
import type { DocStore } from '../store/DocStore';
import { decodeId } from '../store/storeIds';
import { commitUsageBatch, writeUserLimits, type UsagePool, type UsageRow } from './pgUsage';

const DAY_PREFIX = 'usage:day:';
const DATE = /^\d{4}-\d{2}-\d{2}$/;

export interface UsageCopyReport {
  /** Days copied by this run; days copied by an earlier run are skipped. */
  days: number;
  skippedDays: number;
  /** User-days copied. */
  rows: number;
  /** Users with limits in the DocStore (written to PostgreSQL unless it already had theirs: kept). */
  limits: number;
}

/**
 * Copies a usage ledger held in a DocStore (Redis: the `usage:day:<date>` counter maps and
 * `usage:limits`, UsageLedger's layout without a pool) into PostgreSQL, for `npm run
 * migrate-store` (issue 23). Idempotent: each day goes in as one batch with the id
 * `docstore-copy:<date>`, so a second run (or one after a crash) skips the days already copied
 * and counts nothing twice; limits already in `user_limits` are left as they are (an admin may
 * have changed them since). Run it while no instance writes usage to the DocStore: a day copied
 * is not copied again, whatever it gains later.
 */
export async function copyUsageFromDocStore(store: DocStore, pool: UsagePool): Promise<UsageCopyReport> {
  const report: UsageCopyReport = { days: 0, skippedDays: 0, rows: 0, limits: 0 };
  const keys = (await store.keysWithPrefix(DAY_PREFIX)).filter((key) => DATE.test(key.slice(DAY_PREFIX.length))).sort();
  for (const key of keys) {
    const date = key.slice(DAY_PREFIX.length);
    const perUser = new Map<string, UsageRow>();
    for (const [field, value] of Object.entries(await store.counters(key))) {
      const counter = field.slice(0, 2);
      if (!['r:', 'i:', 'o:', 'c:'].includes(counter)) continue;
      const userId = decodeId(field.slice(2));
      let row = perUser.get(userId);
      if (!row) perUser.set(userId, (row = { userId, date, model: '', provider: null, requests: 0, inputTokens: 0, outputTokens: 0, costNano: 0 }));
      const amount = Math.max(0, Math.round(value));
      if (counter === 'r:') row.requests = amount;
      else if (counter === 'i:') row.inputTokens = amount;
      else if (counter === 'o:') row.outputTokens = amount;
      else row.costNano = amount;
    }
    if (await commitUsageBatch(pool, `docstore-copy:${date}`, [...perUser.values()])) {
      report.days += 1;
      report.rows += perUser.size;
    } else report.skippedDays += 1;
  }
  for (const [field, value] of await store.mapGetAll('usage:limits')) {
    const parsed = userLimitsSchema.safeParse(value);
    if (!parsed.success) continue;
    await writeUserLimits(pool, decodeId(field), parsed.data, true);
    report.limits += 1;
  }
  return report;
}
