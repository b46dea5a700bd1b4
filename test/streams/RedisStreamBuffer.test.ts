import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, expect, inject, it } from 'vitest';
import { RedisStreamBuffer } from '../../server/streams/RedisStreamBuffer';
import type { StreamEvent } from '../../shared';

const redis = new Redis(inject('redisUrl'));
afterAll(() => redis.quit());

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

it('writes appends issued without waiting in order, batched, with TTLs on both keys; resumes after any id', async () => {
  const prefix = `test-rsb-${randomUUID()}`;
  const buffer = new RedisStreamBuffer({ redis, prefix, ttlMs: 60_000, blockMs: 200 });
  const id = randomUUID();
  const events: StreamEvent[] = Array.from({ length: 50 }, (_, i) => ({ type: 'delta', text: `t${i}` }));
  const writes = [buffer.create(id, 'alice'), ...events.map((e, i) => buffer.append(id, i + 1, e)), buffer.finish(id, events.length)];
  await Promise.all(writes);
  expect(await buffer.owner(id)).toBe('alice');
  for (const key of [`${prefix}:{chat:${id}}:owner`, `${prefix}:{chat:${id}}:events`]) expect(await redis.pttl(key)).toBeGreaterThan(0);
  const all = await collect(buffer.read(id, 0, new AbortController().signal));
  expect(all).toEqual(events.map((event, i) => ({ id: String(i + 1), event })));
  const after = await collect(buffer.read(id, 47, new AbortController().signal));
  expect(after.map((e) => e.id)).toEqual(['48', '49', '50']);
  await buffer.close();
});

it('events appended on later ticks follow in order, and a write failure rejects only its batch', async () => {
  const prefix = `test-rsb-${randomUUID()}`;
  const buffer = new RedisStreamBuffer({ redis, prefix, blockMs: 200 });
  const id = randomUUID();
  await buffer.create(id, 'bob');
  await buffer.append(id, 1, { type: 'delta', text: 'a' });
  await buffer.append(id, 2, { type: 'delta', text: 'b' });
  // Reusing an id is refused by XADD: that batch fails, the caller hears of it.
  await expect(buffer.append(id, 2, { type: 'delta', text: 'again' })).rejects.toThrow();
  await buffer.finish(id, 2);
  expect((await collect(buffer.read(id, 0, new AbortController().signal))).map((e) => e.id)).toEqual(['1', '2']);
  await buffer.close();
});

it('gathers appends of several ticks into one entry per stream; a resume inside that entry skips what the reader had', async () => {
  const prefix = `test-rsb-${randomUUID()}`;
  const buffer = new RedisStreamBuffer({ redis, prefix, blockMs: 200, flushIntervalMs: 50 });
  const id = randomUUID();
  await buffer.create(id, 'carol');
  const writes: Promise<void>[] = [];
  for (let seq = 1; seq <= 5; seq += 1) {
    writes.push(buffer.append(id, seq, { type: 'delta', text: `w${seq}` }));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  writes.push(buffer.finish(id, 5));
  await Promise.all(writes);
  // One entry for the five events, one for the end.
  expect(await redis.xlen(`${prefix}:{chat:${id}}:events`)).toBe(2);
  const after = await collect(buffer.read(id, 3, new AbortController().signal));
  expect(after).toEqual([
    { id: '4', event: { type: 'delta', text: 'w4' } },
    { id: '5', event: { type: 'delta', text: 'w5' } },
  ]);
  await buffer.close();
});

it('a flush never overtakes the one before it, even when that one spans several event-loop turns', async () => {
  // 450 streams: the first round goes out as pipelines of 200, one per turn. The second event
  // of the last stream is appended while the round is still being sent (its flush, with
  // flushIntervalMs 0, is queued between the round's second and third turns). Sent at once, its
  // XADD 0-2 would reach Redis before that stream's XADD 0-1, which Redis then refuses
  // (ids must grow): the bench saw 1,600 such failed writes at 1,000 streams.
  const prefix = `test-rsb-${randomUUID()}`;
  const buffer = new RedisStreamBuffer({ redis, prefix, blockMs: 200, flushIntervalMs: 0 });
  const ids = Array.from({ length: 450 }, () => randomUUID());
  const last = ids[ids.length - 1]!;
  const writes = ids.map((id) => buffer.append(id, 1, { type: 'delta', text: `first of ${id}` }));
  await new Promise<void>((resolve) => setImmediate(resolve));
  writes.push(buffer.append(last, 2, { type: 'delta', text: 'second' }), buffer.finish(last, 2));
  await Promise.all(writes);
  const events = await collect(buffer.read(last, 0, new AbortController().signal));
  expect(events.map((e) => e.event)).toEqual([
    { type: 'delta', text: `first of ${last}` },
    { type: 'delta', text: 'second' },
  ]);
  await buffer.close();
});
