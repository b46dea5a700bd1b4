import type { DocStore } from './DocStore';
import { decodeId, encodeId } from './storeIds';

export interface NotifiedCacheOptions {
  store: DocStore;
  /** Pub/sub channel: every instance's writers publish the changed entry's key on it. */
  channel: string;
  /** Longest an entry is trusted without a notification (a lost message, a reconnect). Default 1000 ms. */
  maxAgeMs?: number;
  /** Entries kept at most; the oldest go first. Default 100 000. */
  maxEntries?: number;
  clock?: () => number;
}

interface Entry<V> {
  value: Promise<V>;
  loadedAt: number;
}

/** Published as the key to drop every entry (a change that touches all of them, e.g. a key rotation). */
export const EVERY_ENTRY = '*';

/**
 * Per-key values read from the store on every request's path (a user's limits, a user's BYOK
 * routing), kept in process so the hot path costs no round trip. Correctness comes from the
 * store: every write goes to the store first, then `changed(key)` drops the local entry and
 * publishes the key, so every instance drops its copy within the pub/sub delivery time; an
 * entry older than `maxAgeMs` is reloaded anyway, in case a notification was lost. Until
 * `start()` has subscribed, nothing is cached and every read goes to the store (a component
 * used without a gateway behaves as if there were no cache).
 */
export class NotifiedCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly maxAgeMs: number;
  private readonly maxEntries: number;
  private readonly clock: () => number;
  private unsubscribe: (() => Promise<void>) | null = null;

  constructor(private readonly options: NotifiedCacheOptions) {
    this.maxAgeMs = options.maxAgeMs ?? 1000;
    this.maxEntries = options.maxEntries ?? 100_000;
    this.clock = options.clock ?? Date.now;
  }

  async start(): Promise<void> {
    if (this.unsubscribe) return;
    this.unsubscribe = await this.options.store.subscribe(this.options.channel, (message) => this.drop(decodeId(message)));
    this.drop(EVERY_ENTRY);
  }

  async close(): Promise<void> {
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = null;
    this.drop(EVERY_ENTRY);
    if (unsubscribe) await unsubscribe();
  }

  get(key: string, load: () => Promise<V>): Promise<V> {
    if (!this.unsubscribe) return load();
    const now = this.clock();
    const cached = this.entries.get(key);
    if (cached && now - cached.loadedAt < this.maxAgeMs) return cached.value;
    const value = load();
    this.entries.delete(key); // re-inserted last: the Map's order is the eviction order
    this.entries.set(key, { value, loadedAt: now });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    // A failed load is not kept. One that a change overtook is not kept either, without more:
    // the change removed its entry, and nothing puts it back.
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    return value;
  }

  /** After writing the store: drop the entry here at once and tell every other instance. */
  async changed(key: string): Promise<void> {
    this.drop(key);
    // Best effort: a lost notification delays the change elsewhere by at most maxAgeMs. Keys are
    // user ids: one the guard would refuse as a message (a hex or high-entropy id) goes encoded,
    // or it was never sent (issue 24.10).
    await this.options.store.publish(this.options.channel, encodeId(key, 'message')).catch(() => {});
  }

  private drop(key: string): void {
    if (key === EVERY_ENTRY) this.entries.clear();
    else this.entries.delete(key);
  }
}
