import { z } from 'zod';
import type { ByokSettings } from '../../shared/byok';
import { byokKeySchema } from '../../shared/byok';
import type { DocStore } from '../store/DocStore';
import { type Sealed, sealedEnvelopeSchema } from '../store/Sealed';
import { decodeId, encodeId } from '../store/storeIds';

/**
 * Where the BYOK vault keeps users' records: the seam between the vault (sealing, scoping,
 * validation, the routing cache) and the database of record. Two implementations:
 *  - `createDocStoreByokRecords` (here): the DocStore, Redis or in-process, as before issue 23;
 *  - `createPgByokRecords` (server/db/pgByokRecords.ts): PostgreSQL (`user_api_keys`), with DATABASE_URL.
 * Every operation is scoped by user id; reads answer raw stored values (the vault validates);
 * every write passes the secret guard (a record's key is only ever its `Sealed` envelope).
 */
export interface ByokRecords {
  readonly kind: 'docstore' | 'postgres';
  list(userId: string): Promise<unknown[]>;
  /** The record, or null. */
  get(userId: string, id: string): Promise<unknown>;
  /** A new record, indexed for rotation in the same step (never one without the other). */
  add(userId: string, record: ByokRecordToWrite): Promise<void>;
  /** Replaces a record only if it exists; false when it did not (a concurrent delete wins). */
  replaceIfPresent(userId: string, id: string, record: ByokRecordToWrite): Promise<boolean>;
  /** False when there was no such record. */
  remove(userId: string, id: string): Promise<boolean>;
  /** The user's stored settings, or null. */
  settings(userId: string): Promise<unknown>;
  setSettings(userId: string, settings: ByokSettings): Promise<void>;
  /** Every user with records (what a key rotation walks). */
  users(): Promise<string[]>;
}

/** A stored record: what its owner sees (byokKeySchema) but its status, plus the sealed key. */
export const byokRecordSchema = byokKeySchema.omit({ status: true }).extend({ sealed: sealedEnvelopeSchema });
export type StoredByokRecord = z.infer<typeof byokRecordSchema>;
/** What is written: the envelope as a `Sealed`, the one type the secret guard lets through. */
export type ByokRecordToWrite = Omit<StoredByokRecord, 'sealed'> & { sealed: Sealed };

/**
 * DocStore layout: `byok:keys:<userId>` (map: record id -> record), `byok:users` (map: user id ->
 * 1, the index rotation walks), `byok:settings:<userId>` (doc). In keys the user id is
 * URI-encoded; in the index it is as storeIds.encodeId stores it (a hex or key-shaped id
 * encoded: issue 24.10).
 */
const USERS = 'byok:users';
const KEYS_PREFIX = 'byok:keys:';
const SETTINGS_PREFIX = 'byok:settings:';
const keysOf = (userId: string) => `${KEYS_PREFIX}${encodeURIComponent(userId)}`;
const settingsOf = (userId: string) => `${SETTINGS_PREFIX}${encodeURIComponent(userId)}`;

export function createDocStoreByokRecords(store: DocStore): ByokRecords {
  return {
    kind: 'docstore',
    list: async (userId) => [...(await store.mapGetAll(keysOf(userId))).values()],
    get: (userId, id) => store.mapGet(keysOf(userId), id),
    async add(userId, record) {
      // One write: a record outside the index would be skipped by every rotation (issue 24.10).
      await store.transaction([
        { op: 'mapSet', key: keysOf(userId), field: record.id, value: record },
        { op: 'mapSet', key: USERS, field: encodeId(userId), value: 1 },
      ]);
    },
    replaceIfPresent: (userId, id, record) => store.mapSetIfPresent(keysOf(userId), id, record),
    remove: (userId, id) => store.mapDelete(keysOf(userId), id),
    settings: (userId) => store.getJson(settingsOf(userId)),
    setSettings: (userId, settings) => store.setJson(settingsOf(userId), settings),
    /**
     * The index, and every user with a records map: a version before issue 24.10 stored the
     * records of a user whose id looked like a secret (hex) without indexing them. Those users
     * are indexed here, so a rotation run by an older version finds them too.
     */
    async users() {
      const { indexed, unindexed } = await docStoreByokUsers(store);
      for (const userId of unindexed) await store.mapSet(USERS, encodeId(userId), 1);
      return [...indexed, ...unindexed];
    },
  };
}

/** Users with BYOK records in a DocStore: those in the index, and those a version before issue 24.10 left out of it. Reads only. */
export async function docStoreByokUsers(store: DocStore): Promise<{ indexed: string[]; unindexed: string[] }> {
  const indexed = new Set([...(await store.mapGetAll(USERS)).keys()].map(decodeId));
  const unindexed = (await usersUnder(store, KEYS_PREFIX, keysOf)).filter((userId) => !indexed.has(userId));
  return { indexed: [...indexed], unindexed: [...new Set(unindexed)] };
}

/** Users with stored BYOK settings in a DocStore (maintenance: `npm run migrate-store`). */
export function docStoreByokSettingsUsers(store: DocStore): Promise<string[]> {
  return usersUnder(store, SETTINGS_PREFIX, settingsOf);
}

/** The user ids of the keys under `prefix` that `keyOf` makes (other keys are not the vault's). */
async function usersUnder(store: DocStore, prefix: string, keyOf: (userId: string) => string): Promise<string[]> {
  const out: string[] = [];
  for (const key of await store.keysWithPrefix(prefix)) {
    let userId: string;
    try {
      userId = decodeURIComponent(key.slice(prefix.length));
    } catch {
      continue; // not a key this vault wrote
    }
    if (keyOf(userId) === key) out.push(userId);
  }
  return out;
}
