import { randomUUID } from 'node:crypto';
import type { ProviderId } from '../../shared';
import {
  addByokKeyInputSchema,
  byokKeyIdSchema,
  byokSettingsSchema,
  DEFAULT_BYOK_SETTINGS,
  type ByokKey,
  type ByokSettings,
  type ByokTestResult,
} from '../../shared/byok';
import type { Logger } from '../observability/logger';
import { maskOf } from '../pool/keyIdentity';
import { systemClock, type Clock, type DocStore } from '../store/DocStore';
import { EVERY_ENTRY, NotifiedCache } from '../store/NotifiedCache';
import { SecretGuardError } from '../store/secretGuard';
import { ByokError } from './ByokError';
import { byokRecordSchema as recordSchema, createDocStoreByokRecords, type ByokRecords, type ByokRecordToWrite as RecordToWrite, type StoredByokRecord as StoredRecord } from './ByokRecords';
import { Keyring } from './Keyring';

/**
 * Users' own provider keys. The store only ever sees ciphertext (a `Sealed` envelope), the
 * mask and metadata; plaintexts exist in this process while a request uses them.
 *
 * Every operation is scoped to the caller's own records, so another user's key id is simply
 * not found: users cannot read, test, use or remove each other's keys, and the AAD binding
 * makes a ciphertext copied between records useless.
 *
 * The records live in `records` (ByokRecords.ts: the DocStore, or PostgreSQL with DATABASE_URL);
 * the routing cache's change notifications always go through `store` (Redis pub/sub with REDIS_URL).
 */

/** Answers whether a provider accepts a key; injected by the gateway (it owns the provider adapters). */
export type ByokKeyTester = (provider: ProviderId, apiKey: string) => Promise<'valid' | 'rejected' | 'unreachable'>;

export interface ByokSecret {
  id: string;
  provider: ProviderId;
  label: string | null;
  mask: string;
  /** The plaintext key. Server-only: never log, return or store it. */
  secret: string;
}

export interface RotationReport {
  users: number;
  rotated: number;
  alreadyCurrent: number;
  /** Records that could not be opened (corrupt, or sealed under a key we lack); left untouched. */
  failed: number;
}

export interface ByokVaultOptions {
  /** Carries change notifications; holds the records too unless `records` is given. */
  store: DocStore;
  /** Where records and settings live. Default: the DocStore `store` (createDocStoreByokRecords). */
  records?: ByokRecords;
  /**
   * 32 bytes (GatewayEnv.encryptionKey; in demo mode the gateway passes an ephemeral random one).
   * Null: BYOK is off. Adding, testing and rotating keys fail with `not_configured`, stored
   * records are listed but never opened, and every user is routed to the shared pools.
   */
  encryptionKey: Buffer | null;
  /** GatewayEnv.encryptionKeyPrevious: records sealed under it stay readable until rotated. */
  previousEncryptionKey?: Buffer | null;
  clock?: Clock;
  maxKeysPerUser?: number;
  logger?: Logger;
}

/** Carries the user id whose keys or settings changed (or '*' for all, after a rotation). */
export const BYOK_CHANNEL = 'byok';

/** What routing needs of a user's BYOK setup on every request: which providers have usable keys, and the fallback setting. */
export interface ByokRouting {
  providers: ReadonlySet<ProviderId>;
  fallbackToSharedPool: boolean;
}
/** Binds a ciphertext to its owner, record and provider. */
const aadOf = (userId: string, id: string, provider: ProviderId) => `keyrack-byok:v1\u0000${userId}\u0000${id}\u0000${provider}`;
const notFound = () => new ByokError('not_found', 'no such key');

/** Routing while BYOK is off: no own keys, the shared pools serve. */
const BYOK_OFF: ByokRouting = Object.freeze({ providers: new Set<ProviderId>(), fallbackToSharedPool: true });

export class ByokVault {
  private readonly storage: ByokRecords;
  private readonly keyring: Keyring | null;
  private readonly clock: Clock;
  private readonly maxKeysPerUser: number;
  private readonly logger: Logger | undefined;
  /** Read on every chat: in process, dropped on change by any instance. */
  private readonly routings: NotifiedCache<ByokRouting>;

  constructor(options: ByokVaultOptions) {
    this.storage = options.records ?? createDocStoreByokRecords(options.store);
    this.routings = new NotifiedCache({ store: options.store, channel: BYOK_CHANNEL });
    this.keyring = options.encryptionKey ? new Keyring(options.encryptionKey, options.previousEncryptionKey) : null;
    this.clock = options.clock ?? systemClock;
    this.maxKeysPerUser = options.maxKeysPerUser ?? 20;
    this.logger = options.logger;
  }

  /** Turns on the routing cache (subscribes to changes). Without it every routing() reads the store. */
  async init(): Promise<void> {
    await this.routings.start();
  }

  async close(): Promise<void> {
    await this.routings.close();
  }

  /** Providers with at least one key that opens, and the user's fallback setting: one cached answer per user. */
  routing(userId: string): Promise<ByokRouting> {
    if (!this.keyring) return Promise.resolve(BYOK_OFF);
    return this.routings.get(userId, async () => {
      const [keys, settings] = await Promise.all([this.list(userId), this.getSettings(userId)]);
      return { providers: new Set(keys.filter((k) => k.status === 'ok').map((k) => k.provider)), fallbackToSharedPool: settings.fallbackToSharedPool };
    });
  }

  get currentKeyId(): string {
    return this.requireKeyring().currentKeyId;
  }

  async add(userId: string, input: unknown): Promise<ByokKey> {
    const keyring = this.requireKeyring();
    const parsed = addByokKeyInputSchema.safeParse(input);
    // zod messages describe the rule, never the input; still, name only the fields.
    if (!parsed.success) throw new ByokError('invalid_input', `invalid ${[...new Set(parsed.error.issues.map((i) => i.path.join('.') || 'input'))].join(', ')}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    const { provider, apiKey } = parsed.data;
    const label = parsed.data.label ? parsed.data.label : null;
    const existing = await this.records(userId);
    if (existing.length >= this.maxKeysPerUser) throw new ByokError('limit_reached', `at most ${this.maxKeysPerUser} keys per user`);
    for (const record of existing) {
      if (record.provider !== provider) continue;
      if (this.tryOpen(userId, record) === apiKey) throw new ByokError('duplicate', 'this key is already stored');
    }
    const id = randomUUID();
    const record: RecordToWrite = {
      id,
      provider,
      label,
      mask: maskOf(apiKey),
      createdAt: new Date(this.clock()).toISOString(),
      lastTest: null,
      sealed: keyring.seal(apiKey, aadOf(userId, id, provider)),
    };
    try {
      await this.storage.add(userId, record);
    } catch (error) {
      // The record's only free text is its label (the index entry is never refused).
      if (error instanceof SecretGuardError) throw new ByokError('invalid_input', 'the label looks like a secret; labels are stored unencrypted');
      throw error;
    }
    await this.routings.changed(userId);
    return toPublic(record, 'ok');
  }

  /** The user's keys, masked, each checked to still open (a tampered record lists as corrupt). */
  async list(userId: string): Promise<(ByokKey & { status: 'ok' | 'corrupt' })[]> {
    const records = await this.records(userId);
    return records
      .map((record) => toPublic(record, this.tryOpen(userId, record) === null ? 'corrupt' : 'ok'))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async remove(userId: string, id: string): Promise<void> {
    if (!byokKeyIdSchema.safeParse(id).success) throw notFound();
    if (!(await this.storage.remove(userId, id))) throw notFound();
    await this.routings.changed(userId);
  }

  /**
   * Plaintexts of the user's keys for a provider, for routing. Records that fail to open are
   * skipped (never used) and logged by id.
   */
  async getSecrets(userId: string, provider: ProviderId): Promise<ByokSecret[]> {
    const out: ByokSecret[] = [];
    for (const record of await this.records(userId)) {
      if (record.provider !== provider) continue;
      const secret = this.tryOpen(userId, record);
      if (secret === null) continue;
      out.push({ id: record.id, provider: record.provider, label: record.label, mask: record.mask, secret });
    }
    return out;
  }

  /** Asks the provider whether the key works, and remembers the answer. A corrupt record is not sent anywhere. */
  async test(userId: string, id: string, tester: ByokKeyTester): Promise<ByokTestResult> {
    const keyring = this.requireKeyring();
    const record = await this.record(userId, id);
    const secret = this.tryOpen(userId, record);
    const result: ByokTestResult = secret === null ? 'corrupt' : await tester(record.provider, secret);
    // The envelope is written back unchanged, wrapped again as a Sealed for the guard.
    const next: RecordToWrite = { ...record, lastTest: { result, at: new Date(this.clock()).toISOString() }, sealed: keyring.wrap(record.sealed) };
    await this.storage.replaceIfPresent(userId, id, next);
    return result;
  }

  async getSettings(userId: string): Promise<ByokSettings> {
    const parsed = byokSettingsSchema.safeParse(await this.storage.settings(userId));
    return parsed.success ? parsed.data : { ...DEFAULT_BYOK_SETTINGS };
  }

  async setSettings(userId: string, settings: unknown): Promise<ByokSettings> {
    const parsed = byokSettingsSchema.safeParse(settings);
    if (!parsed.success) throw new ByokError('invalid_input', parsed.error.issues.map((i) => i.message).join('; '));
    await this.storage.setSettings(userId, parsed.data);
    await this.routings.changed(userId);
    return parsed.data;
  }

  /**
   * Re-seals every record not under the current key. Safe while gateways serve: each record is
   * replaced in one write, old and new envelopes both open (the previous key is still loaded),
   * and a record deleted meanwhile stays deleted (set-if-present).
   */
  async rotateEncryptionKey(): Promise<RotationReport> {
    const keyring = this.requireKeyring();
    const report: RotationReport = { users: 0, rotated: 0, alreadyCurrent: 0, failed: 0 };
    for (const userId of await this.storage.users()) {
      report.users++;
      for (const record of await this.records(userId)) {
        if (record.sealed.kid === keyring.currentKeyId) {
          report.alreadyCurrent++;
          continue;
        }
        const secret = this.tryOpen(userId, record);
        if (secret === null) {
          report.failed++;
          continue;
        }
        const next: RecordToWrite = { ...record, sealed: keyring.seal(secret, aadOf(userId, record.id, record.provider)) };
        if (await this.storage.replaceIfPresent(userId, record.id, next)) report.rotated++;
      }
    }
    // A record that opened under no key may open now (or the reverse): every instance re-reads.
    await this.routings.changed(EVERY_ENTRY);
    return report;
  }

  private async records(userId: string): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    for (const value of await this.storage.list(userId)) {
      const parsed = recordSchema.safeParse(value);
      if (parsed.success) out.push(parsed.data);
      else this.logger?.warn({ userId }, 'unreadable BYOK record skipped');
    }
    return out;
  }

  private async record(userId: string, id: string): Promise<StoredRecord> {
    if (!byokKeyIdSchema.safeParse(id).success) throw notFound();
    const parsed = recordSchema.safeParse(await this.storage.get(userId, id));
    if (!parsed.success) throw notFound();
    return parsed.data;
  }

  private requireKeyring(): Keyring {
    if (!this.keyring) throw new ByokError('not_configured', 'BYOK is off on this gateway: it has no ENCRYPTION_KEY to encrypt keys with');
    return this.keyring;
  }

  /** The plaintext, or null when the record does not open (logged by id, never used; BYOK off: nothing opens). */
  private tryOpen(userId: string, record: StoredRecord): string | null {
    if (!this.keyring) return null;
    try {
      return this.keyring.open(record.sealed, aadOf(userId, record.id, record.provider));
    } catch (error) {
      if (!ByokError.isInstance(error)) throw error;
      this.logger?.warn({ userId, byokKeyId: record.id, problem: error.code }, 'BYOK key cannot be decrypted; not used');
      return null;
    }
  }
}

function toPublic(record: StoredRecord | RecordToWrite, status: 'ok' | 'corrupt'): ByokKey & { status: 'ok' | 'corrupt' } {
  return { id: record.id, provider: record.provider, label: record.label, mask: record.mask, createdAt: record.createdAt, lastTest: record.lastTest, status };
}
