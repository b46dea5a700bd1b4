import type pg from 'pg';
import { BUSINESS_SETTING_KEYS, modelEntrySchema } from '../../shared/business';
import { byokSettingsSchema } from '../../shared/byok';
import { createDocStoreBusinessRecords } from '../business/BusinessConfigRecords';
import { byokRecordSchema, createDocStoreByokRecords, docStoreByokSettingsUsers, docStoreByokUsers } from '../byok/ByokRecords';
import type { DocStore } from '../store/DocStore';
import { Sealed } from '../store/Sealed';
import { inTransaction } from './inTransaction';
import { insertSeededMarker, upsertModel, upsertSetting } from './pgBusinessRecords';
import { upsertByokRecord, upsertByokSettings } from './pgByokRecords';

/** Per kind of row: written (new or different), unchanged (already identical), skipped (unreadable in the source). */
export interface CopyCount {
  written: number;
  unchanged: number;
  skipped: number;
}

export interface StoreMigrationReport {
  /** False when the source was never seeded (a DocStore without its marker re-seeds defaults anyway): business config not copied. */
  businessFound: boolean;
  settings: CopyCount;
  models: CopyCount;
  byokUsers: number;
  byokKeys: CopyCount;
  byokSettings: CopyCount;
  /** What further steps (the usage ledger's) reported, by name. */
  extra: Record<string, CopyCount>;
}

/**
 * A further copy run in the same transaction, e.g. the usage ledger's (issue 23): reads the
 * source DocStore, writes through `client`, idempotently.
 */
export type StoreMigrationStep = { name: string; copy(from: DocStore, client: pg.PoolClient): Promise<CopyCount> };

const count = (): CopyCount => ({ written: 0, unchanged: 0, skipped: 0 });
const tally = (c: CopyCount, wrote: boolean) => void (wrote ? c.written++ : c.unchanged++);

/**
 * `npm run migrate-store`: copies a DocStore (a Redis-held store) into PostgreSQL, all in one
 * transaction: business settings and models, BYOK records (the ciphertext as is, so the same
 * ENCRYPTION_KEY opens them) and BYOK settings. Idempotent: a row already identical is left
 * alone, so a second run writes nothing. It reads the source only and deletes nothing in
 * PostgreSQL (a model present there only stays). Every value passes the secret guard again.
 */
export async function migrateStore(from: DocStore, pool: pg.Pool, steps: readonly StoreMigrationStep[] = []): Promise<StoreMigrationReport> {
  const business = await createDocStoreBusinessRecords(from).read();
  const byok = createDocStoreByokRecords(from);
  const { indexed, unindexed } = await docStoreByokUsers(from);
  const users = [...indexed, ...unindexed];
  const recordsByUser = await Promise.all(users.map(async (userId) => [userId, await byok.list(userId)] as const));
  const settingsUsers = await docStoreByokSettingsUsers(from);
  const settingsByUser = await Promise.all(settingsUsers.map(async (userId) => [userId, await byok.settings(userId)] as const));

  return inTransaction(pool, async (client) => {
    const report: StoreMigrationReport = {
      businessFound: business.seeded,
      settings: count(),
      models: count(),
      byokUsers: users.length,
      byokKeys: count(),
      byokSettings: count(),
      extra: {},
    };
    if (business.seeded) {
      for (const key of BUSINESS_SETTING_KEYS) {
        const value = business.settings.get(key);
        if (typeof value !== 'number') {
          if (value !== undefined) report.settings.skipped++;
          continue;
        }
        tally(report.settings, await upsertSetting(client, key, value));
      }
      for (const stored of business.models) {
        const parsed = modelEntrySchema.safeParse(stored);
        if (!parsed.success) report.models.skipped++;
        else tally(report.models, await upsertModel(client, parsed.data));
      }
      // Copied with the catalog, so a gateway starting on PostgreSQL keeps it instead of seeding defaults over it.
      await insertSeededMarker(client);
    }
    for (const [userId, records] of recordsByUser) {
      for (const stored of records) {
        const parsed = byokRecordSchema.safeParse(stored);
        if (!parsed.success) report.byokKeys.skipped++;
        else tally(report.byokKeys, await upsertByokRecord(client, userId, { ...parsed.data, sealed: new Sealed(parsed.data.sealed) }));
      }
    }
    for (const [userId, stored] of settingsByUser) {
      const parsed = byokSettingsSchema.safeParse(stored);
      if (!parsed.success) report.byokSettings.skipped++;
      else tally(report.byokSettings, await upsertByokSettings(client, userId, parsed.data));
    }
    for (const step of steps) report.extra[step.name] = await step.copy(from, client);
    return report;
  });
}

/** The report as the command prints it: counts only, never a value. */
export function describeMigration(report: StoreMigrationReport): string[] {
  const line = (name: string, c: CopyCount) => `${name}: ${c.written} written, ${c.unchanged} already identical${c.skipped ? `, ${c.skipped} unreadable and skipped` : ''}`;
  return [
    report.businessFound ? line('business settings', report.settings) : 'business settings and models: none in the source (never seeded), not copied',
    ...(report.businessFound ? [line('models', report.models)] : []),
    line(`BYOK keys (${report.byokUsers} users)`, report.byokKeys),
    line('BYOK settings', report.byokSettings),
    ...Object.entries(report.extra).map(([name, c]) => line(name, c)),
  ];
}
