import calculateSlot from 'cluster-key-slot';
import { describe, expect, it } from 'vitest';
import { assertOneArea, DocStoreAreaError, docStoreKeyOf, docStoreRedisKey } from '../../server/store/docStoreKeys';
import { STREAM_BUCKETS, streamKeysOf } from '../../server/streams/streamKeys';

/** Issue 22: every multi-key step's keys hash to one Redis Cluster slot. */
describe('issue 22: key layout for Redis Cluster', () => {
  const slotsOf = (keys: string[]) => new Set(keys.map((k) => calculateSlot(k)));

  it('DocStore: the keys of one area share a slot (BYOK add, business seed, usage batches and holds)', () => {
    const p = 'keyrack';
    const byok = ['byok:keys:alice', 'byok:users'].map((k) => docStoreRedisKey(p, k));
    const business = ['business:seeded', 'business:settings', 'business:models'].map((k) => docStoreRedisKey(p, k));
    const usage = ['usage:day:2026-01-01', 'usage:day:2026-01-02', 'usage:holds:2026-01-01:alice', 'usage:batch:x', 'usage:spent:2026-01-01', 'usage:seed:2026-01-01:bob'].map((k) => docStoreRedisKey(p, k));
    for (const keys of [byok, business, usage]) expect(slotsOf(keys).size).toBe(1);
    expect(docStoreRedisKey(p, 'business:settings')).toBe('keyrack:{business}:settings');
    expect(docStoreKeyOf(p, 'keyrack:{usage}:day:2026-01-01')).toBe('usage:day:2026-01-01');
  });

  it('DocStore: a step over two areas is refused loudly', () => {
    expect(() => assertOneArea('transaction', ['byok:users', 'business:models'])).toThrow(DocStoreAreaError);
    expect(() => assertOneArea('transaction', ['byok:users', 'byok:keys:a'])).not.toThrow();
  });

  it('streams: a stream\'s keys share a slot, and streams spread over the buckets', () => {
    const ids = Array.from({ length: 200 }, (_, i) => `stream-${i}`);
    for (const id of ids) {
      const k = streamKeysOf('keyrack', id);
      expect(slotsOf([k.events, k.owner, k.producer]).size).toBe(1);
    }
    const buckets = new Set(ids.map((id) => streamKeysOf('keyrack', id).bucket));
    expect(buckets.size).toBe(STREAM_BUCKETS);
    // One bucket is one slot: a flush or a blocking read over a bucket's streams is one command.
    expect(slotsOf(ids.filter((id) => streamKeysOf('keyrack', id).bucket === 3).map((id) => streamKeysOf('keyrack', id).events)).size).toBe(1);
  });
});
