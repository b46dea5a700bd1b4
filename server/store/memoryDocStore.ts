import { EventEmitter } from 'node:events';
import type { Clock, CounterWrite, DocStore, DocWrite, ReserveResult, WindowHit } from './DocStore';
import { systemClock } from './DocStore';
import { assertOneArea } from './docStoreKeys';
import { assertNoSecrets, assertNotSecretIdentifier } from './secretGuard';

/**
 * The in-process DocStore (no REDIS_URL). Values are kept as JSON text, exactly what the
 * Redis store would hold, so a test can dump either and scan it.
 */
export interface MemoryDocStoreOptions {
  clock?: Clock;
}

export interface MemoryDocStore extends DocStore {
  /** Every stored value as text, for tests that scan the store for secrets. */
  dump(): string[];
}

export function createMemoryDocStore(options: MemoryDocStoreOptions = {}): MemoryDocStore {
  const clock = options.clock ?? systemClock;
  const docs = new Map<string, string>();
  const maps = new Map<string, Map<string, string>>();
  const counterMaps = new Map<string, { fields: Map<string, number>; expiresAt: number }>();
  const windows = new Map<string, number[]>();
  /** Holds sets: member (`<id>:<amount>`) -> expiry. */
  const holds = new Map<string, Map<string, number>>();
  /** applyOnce markers -> expiry. */
  const markers = new Map<string, number>();
  const events = new EventEmitter();
  events.setMaxListeners(0);

  const encode = (key: string, value: unknown): string => {
    assertNoSecrets(key, value);
    return JSON.stringify(value);
  };
  const decode = (text: string | undefined): unknown => (text === undefined ? null : JSON.parse(text));
  const liveCounters = (key: string) => {
    const entry = counterMaps.get(key);
    if (entry && entry.expiresAt <= clock()) {
      counterMaps.delete(key);
      return undefined;
    }
    return entry;
  };

  const applyWrite = (write: CounterWrite) => {
    let entry = liveCounters(write.key);
    if (!entry) counterMaps.set(write.key, (entry = { fields: new Map(), expiresAt: Infinity }));
    for (const [field, delta] of Object.entries(write.deltas)) entry.fields.set(field, (entry.fields.get(field) ?? 0) + delta);
    if (write.ttlMs !== undefined) entry.expiresAt = clock() + write.ttlMs;
  };
  const liveHolds = (key: string, nowMs: number) => {
    const set = holds.get(key);
    if (!set) return undefined;
    for (const [member, expiresAt] of set) if (expiresAt <= nowMs) set.delete(member);
    if (set.size === 0) holds.delete(key);
    return set.size === 0 ? undefined : set;
  };

  return {
    kind: 'memory',
    async getJson(key) {
      return decode(docs.get(key));
    },
    async setJson(key, value) {
      docs.set(key, encode(key, value));
    },
    async setJsonIfAbsent(key, value) {
      const text = encode(key, value);
      if (docs.has(key)) return false;
      docs.set(key, text);
      return true;
    },
    async delete(key) {
      docs.delete(key);
      maps.delete(key);
      counterMaps.delete(key);
      windows.delete(key);
    },
    async mapGet(key, field) {
      return decode(maps.get(key)?.get(field));
    },
    async mapGetAll(key) {
      return new Map([...(maps.get(key) ?? [])].map(([field, text]) => [field, JSON.parse(text) as unknown]));
    },
    async mapSet(key, field, value) {
      const text = encode(`${key}[${field}]`, value);
      assertNotSecretIdentifier(`${key} (a field name)`, field);
      let map = maps.get(key);
      if (!map) maps.set(key, (map = new Map()));
      map.set(field, text);
    },
    async mapSetIfPresent(key, field, value) {
      const text = encode(`${key}[${field}]`, value);
      const map = maps.get(key);
      if (!map?.has(field)) return false;
      map.set(field, text);
      return true;
    },
    async mapDelete(key, field) {
      const map = maps.get(key);
      const deleted = map?.delete(field) ?? false;
      if (map?.size === 0) maps.delete(key);
      return deleted;
    },
    async mapSize(key) {
      return maps.get(key)?.size ?? 0;
    },
    async transaction(writes: readonly DocWrite[], options = {}) {
      // The Redis store's rule (one area per step, issue 22) here too, so tests on memory catch a violation.
      assertOneArea('transaction', [...(options.ifAbsent === undefined ? [] : [options.ifAbsent]), ...writes.map((w) => w.key)]);
      // Everything checked and encoded first; then applied with no await in between.
      const texts = writes.map((write) => {
        if (write.op === 'mapDelete') return '';
        if (write.op === 'setJson') return encode(write.key, write.value);
        assertNotSecretIdentifier(`${write.key} (a field name)`, write.field);
        return encode(`${write.key}[${write.field}]`, write.value);
      });
      const guard = options.ifAbsent;
      if (guard !== undefined && (docs.has(guard) || maps.has(guard) || liveCounters(guard) || windows.has(guard))) return false;
      writes.forEach((write, i) => {
        if (write.op === 'setJson') {
          docs.set(write.key, texts[i]!);
          return;
        }
        let map = maps.get(write.key);
        if (write.op === 'mapDelete') {
          map?.delete(write.field);
          if (map?.size === 0) maps.delete(write.key);
          return;
        }
        if (!map) maps.set(write.key, (map = new Map()));
        map.set(write.field, texts[i]!);
      });
      return true;
    },
    async increment(key, deltas, ttlMs) {
      for (const field of Object.keys(deltas)) assertNotSecretIdentifier(`${key} (a field name)`, field);
      applyWrite({ key, deltas, ...(ttlMs !== undefined ? { ttlMs } : {}) });
    },
    async applyOnce(batch) {
      assertOneArea('applyOnce', [batch.markerKey, ...(batch.forget === undefined ? [] : [batch.forget]), ...batch.writes.map((w) => w.key), ...(batch.releases ?? []).map((h) => h.key)]);
      for (const write of batch.writes) for (const field of Object.keys(write.deltas)) assertNotSecretIdentifier(`${write.key} (a field name)`, field);
      const now = clock();
      if (batch.forget !== undefined) markers.delete(batch.forget);
      for (const [key, expiresAt] of markers) if (expiresAt <= now) markers.delete(key);
      if (markers.has(batch.markerKey)) return false;
      markers.set(batch.markerKey, now + batch.markerTtlMs);
      for (const write of batch.writes) applyWrite(write);
      for (const hold of batch.releases ?? []) {
        const set = holds.get(hold.key);
        set?.delete(hold.member);
        if (set?.size === 0) holds.delete(hold.key);
      }
      return true;
    },
    async reserve(request): Promise<ReserveResult> {
      assertOneArea('reserve', [request.counterKey, request.holdsKey]);
      const spent = (liveCounters(request.counterKey)?.fields.get(request.field) ?? 0) + request.extra;
      const set = liveHolds(request.holdsKey, request.nowMs);
      let held = 0;
      for (const member of set?.keys() ?? []) held += holdAmount(member);
      if (spent + held >= request.limit) return { ok: false, spent, held };
      if (!request.hold) return { ok: true, spent, held };
      const member = `${request.hold.id}:${request.hold.amount}`;
      let target = set;
      if (!target) holds.set(request.holdsKey, (target = new Map()));
      target.set(member, request.hold.expiresAtMs);
      return { ok: true, spent, held, hold: { key: request.holdsKey, member } };
    },
    async counters(key, fields) {
      const entry = liveCounters(key);
      const out: Record<string, number> = {};
      if (!entry) return out;
      for (const [field, value] of entry.fields) if (!fields || fields.includes(field)) out[field] = value;
      return out;
    },
    async windowHit(key, nowMs, windowMs, limit): Promise<WindowHit> {
      const log = (windows.get(key) ?? []).filter((t) => t > nowMs - windowMs);
      windows.set(key, log);
      if (log.length >= limit) return { allowed: false, count: log.length, retryAfterMs: Math.max(1, log[log.length - limit]! + windowMs - nowMs) };
      log.push(nowMs);
      return { allowed: true, count: log.length };
    },
    async keysWithPrefix(prefix) {
      const keys = new Set([...docs.keys(), ...maps.keys(), ...[...counterMaps.keys()].filter((key) => liveCounters(key)), ...windows.keys()]);
      return [...keys].filter((key) => key.startsWith(prefix));
    },
    async publish(channel, message) {
      assertNoSecrets(`channel ${channel}`, message);
      // Asynchronous like Redis delivery, so a publisher never runs listeners inside its own write.
      queueMicrotask(() => events.emit(channel, message));
    },
    async subscribe(channel, listener) {
      events.on(channel, listener);
      return async () => {
        events.off(channel, listener);
      };
    },
    async close() {
      events.removeAllListeners();
    },
    dump() {
      const out: string[] = [];
      for (const [key, text] of docs) out.push(`${key}=${text}`);
      for (const [key, map] of maps) for (const [field, text] of map) out.push(`${key}[${field}]=${text}`);
      for (const [key, entry] of counterMaps) for (const [field, n] of entry.fields) out.push(`${key}[${field}]=${n}`);
      return out;
    },
  };
}

/** A hold's amount, from its member `<id>:<amount>`. */
function holdAmount(member: string): number {
  return Number(member.slice(member.lastIndexOf(':') + 1));
}
