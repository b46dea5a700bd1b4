import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { RedisStreamBuffer } from '../../server/streams/RedisStreamBuffer';
import type { DurableWriteProgress } from '../../server/streams/types';
import type { StreamEvent } from '../../shared';
import { waitFor } from '../ops/waitFor';
import { STREAM_BUCKETS, streamKeysOf } from '../../server/streams/streamKeys';
import { forEachRedisTopology, mastersOf } from '../support/redisTopologies';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** What a writer heard: each `written` seq and each failure's message. */
function recorder(): DurableWriteProgress & { written: (seq: number) => void; seqs: number[]; failures: string[] } {
  const seqs: number[] = [];
  const failures: string[] = [];
  return {
    seqs,
    failures,
    written: (seq) => void seqs.push(seq),
    failed: (error) => void failures.push(error instanceof Error ? error.message : String(error)),
  };
}

/** On a single Redis node and on a Redis Cluster (issue 22: a flush and a blocking read per stream bucket there). */
forEachRedisTopology((topology) => {
  const redis = topology.connect();
  afterAll(() => redis.quit());

  it('writes appends handed over without waiting in order, batched, with TTLs on both keys; resumes after any id', async () => {
    const prefix = `test-rsb-${randomUUID()}`;
    const buffer = new RedisStreamBuffer({ redis, prefix, ttlMs: 60_000, blockMs: 200 });
    const id = randomUUID();
    const progress = recorder();
    const events: StreamEvent[] = Array.from({ length: 50 }, (_, i) => ({ type: 'delta', text: `t${i}` }));
    buffer.create(id, 'alice', progress);
    events.forEach((e, i) => buffer.append(id, i + 1, e));
    buffer.finish(id, events.length);
    await buffer.flushed();
    // One flush: the writer hears once, with the end's seq.
    expect(progress).toMatchObject({ seqs: [51], failures: [] });
    expect(await buffer.owner(id)).toBe('alice');
    for (const key of [streamKeysOf(prefix, id).owner, streamKeysOf(prefix, id).events]) expect(await redis.pttl(key)).toBeGreaterThan(0);
    const all = await collect(buffer.read(id, 0, new AbortController().signal));
    expect(all).toEqual(events.map((event, i) => ({ id: String(i + 1), event })));
    const after = await collect(buffer.read(id, 47, new AbortController().signal));
    expect(after.map((e) => e.id)).toEqual(['48', '49', '50']);
    await buffer.close();
  });

  it('events appended after a flush follow in order, and a failed write is told to its own stream only', async () => {
    const prefix = `test-rsb-${randomUUID()}`;
    const buffer = new RedisStreamBuffer({ redis, prefix, blockMs: 200 });
    const [id, other] = [randomUUID(), randomUUID()];
    const [progress, otherProgress] = [recorder(), recorder()];
    buffer.create(id, 'bob', progress);
    buffer.create(other, 'bob', otherProgress);
    buffer.append(id, 1, { type: 'delta', text: 'a' });
    await buffer.flushed();
    buffer.append(id, 2, { type: 'delta', text: 'b' });
    await buffer.flushed();
    expect(progress).toMatchObject({ seqs: [1, 2], failures: [] });
    // Reusing an id is refused by XADD: that stream's writer hears of it, the other stream's batch is written.
    buffer.append(id, 2, { type: 'delta', text: 'again' });
    buffer.append(other, 1, { type: 'delta', text: 'x' });
    await buffer.flushed();
    expect(progress.failures).toEqual([expect.stringContaining('equal or smaller')]);
    expect(otherProgress).toMatchObject({ seqs: [1], failures: [] });
    buffer.finish(id, 2);
    await buffer.flushed();
    expect((await collect(buffer.read(id, 0, new AbortController().signal))).map((e) => e.id)).toEqual(['1', '2']);
    await buffer.close();
  });

  it('gathers appends of several ticks into one entry per stream; a resume inside that entry skips what the reader had', async () => {
    const prefix = `test-rsb-${randomUUID()}`;
    const buffer = new RedisStreamBuffer({ redis, prefix, blockMs: 200, flushIntervalMs: 50 });
    const id = randomUUID();
    buffer.create(id, 'carol');
    for (let seq = 1; seq <= 5; seq += 1) {
      buffer.append(id, seq, { type: 'delta', text: `w${seq}` });
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    buffer.finish(id, 5);
    await buffer.flushed();
    // One entry for the five events, one for the end.
    expect(await redis.xlen(streamKeysOf(prefix, id).events)).toBe(2);
    const after = await collect(buffer.read(id, 3, new AbortController().signal));
    expect(after).toEqual([
      { id: '4', event: { type: 'delta', text: 'w4' } },
      { id: '5', event: { type: 'delta', text: 'w5' } },
    ]);
    await buffer.close();
  });

  it('a flush never overtakes the one before it, even when that one spans several event-loop turns', async () => {
    // 450 streams: the first round goes out as pipelines of 200, one per turn. A second event for
    // the first stream (already sent) and for the last (not yet sent) comes while the round is
    // still going out; with flushIntervalMs 0 the next flush comes due between the round's turns.
    // Had it been sent then, the last stream's XADD 0-2 would have reached Redis before its XADD
    // 0-1, which Redis refuses (ids must grow): the bench saw 1,600 such failed writes at 1,000
    // streams.
    const prefix = `test-rsb-${randomUUID()}`;
    const buffer = new RedisStreamBuffer({ redis, prefix, blockMs: 200, flushIntervalMs: 0 });
    const ids = Array.from({ length: 450 }, () => randomUUID());
    const [first, last] = [ids[0]!, ids[ids.length - 1]!];
    const [firstProgress, lastProgress] = [recorder(), recorder()];
    for (const id of ids) buffer.create(id, 'dave', id === first ? firstProgress : id === last ? lastProgress : undefined);
    for (const id of ids) buffer.append(id, 1, { type: 'delta', text: `first of ${id}` });
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const id of [first, last]) {
      buffer.append(id, 2, { type: 'delta', text: `second of ${id}` });
      buffer.finish(id, 2);
    }
    await buffer.flushed();
    // The first stream's second batch waited for the round; the last stream's joined its first.
    expect(firstProgress).toMatchObject({ seqs: [1, 3], failures: [] });
    expect(lastProgress).toMatchObject({ seqs: [3], failures: [] });
    for (const id of [first, last]) {
      const events = await collect(buffer.read(id, 0, new AbortController().signal));
      expect(events.map((e) => e.event)).toEqual([
        { type: 'delta', text: `first of ${id}` },
        { type: 'delta', text: `second of ${id}` },
      ]);
    }
    await buffer.close();
  });

  it('without a fixed interval, gathers for as long as keeps every stream under writesPerSecond', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const prefix = `test-rsb-${randomUUID()}`;
      // Two streams at 4 writes/s: one flush every 500 ms.
      const buffer = new RedisStreamBuffer({ redis, prefix, blockMs: 200, writesPerSecond: 4 });
      const ids = [randomUUID(), randomUUID()];
      let written!: () => void;
      const bothWritten = new Promise<void>((resolve) => (written = resolve));
      let count = 0;
      for (const id of ids) buffer.create(id, 'erin', { written: () => void (++count === 2 && written()), failed: () => {} });
      for (const id of ids) buffer.append(id, 1, { type: 'delta', text: 'x' });
      vi.advanceTimersByTime(499);
      // Anything sent before these is answered before them (each node's connection in order).
      await Promise.all(mastersOf(redis).map((node) => node.ping()));
      expect(count).toBe(0);
      expect(await redis.exists(streamKeysOf(prefix, ids[0]!).events)).toBe(0);
      vi.advanceTimersByTime(1);
      await bothWritten;
      for (const id of ids) expect(await redis.xlen(streamKeysOf(prefix, id).events)).toBe(1);
      await buffer.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('still writes after Redis lost its scripts, and reads single-event entries (field e) that earlier versions wrote', async () => {
    const prefix = `test-rsb-${randomUUID()}`;
    const buffer = new RedisStreamBuffer({ redis, prefix, blockMs: 200, flushIntervalMs: 0 });
    const id = randomUUID();
    const progress = recorder();
    buffer.create(id, 'frank', progress);
    await redis.xadd(streamKeysOf(prefix, id).events, '0-1', 'e', JSON.stringify({ type: 'delta', text: 'old' }));
    // A restarted Redis has no scripts: the batch is sent as EVAL once EVALSHA is refused.
    for (const node of mastersOf(redis)) await node.script('FLUSH');
    buffer.append(id, 2, { type: 'delta', text: 'new' });
    buffer.finish(id, 2);
    await buffer.flushed();
    expect(progress).toMatchObject({ seqs: [3], failures: [] });
    expect(await collect(buffer.read(id, 0, new AbortController().signal))).toEqual([
      { id: '1', event: { type: 'delta', text: 'old' } },
      { id: '2', event: { type: 'delta', text: 'new' } },
    ]);
    await buffer.close();
  });

  describe('issue 24: liveness and the shared reader', () => {
    it('issue 24.6: a reader of a stream whose producer died without an end gets stream_interrupted, not pings until the copy expires', async () => {
      const prefix = `test-rsb-${randomUUID()}`;
      // The producer beats every 20 ms with a 100 ms TTL; close() stops the beat and writes no
      // end, as a SIGKILL would.
      const producer = new RedisStreamBuffer({ redis, prefix, flushIntervalMs: 0, heartbeatMs: 20, livenessTtlMs: 100 });
      const reader = new RedisStreamBuffer({ redis, prefix, blockMs: 20, checkMs: 20 });
      const id = randomUUID();
      producer.create(id, 'gina');
      producer.append(id, 1, { type: 'delta', text: 'a' });
      producer.append(id, 2, { type: 'delta', text: 'b' });
      await producer.flushed();
      await producer.close();
      const events = await collect(reader.read(id, 1, new AbortController().signal));
      expect(events).toEqual([
        { id: '2', event: { type: 'delta', text: 'b' } },
        { id: '3', event: { type: 'error', code: 'stream_interrupted', message: expect.stringContaining('stopped') } },
      ]);
      // A resume after everything there was also hears it (nothing to read, producer gone).
      const again = await collect(reader.read(id, 3, new AbortController().signal));
      expect(again.map((e) => e.event)).toEqual([expect.objectContaining({ code: 'stream_interrupted' })]);
      await reader.close();
    });

    it('issue 24.6: a producer that still beats is waited for, however long it is quiet', async () => {
      const prefix = `test-rsb-${randomUUID()}`;
      const producer = new RedisStreamBuffer({ redis, prefix, flushIntervalMs: 0, heartbeatMs: 20, livenessTtlMs: 100 });
      const reader = new RedisStreamBuffer({ redis, prefix, blockMs: 20, checkMs: 20 });
      const id = randomUUID();
      producer.create(id, 'hank');
      producer.append(id, 1, { type: 'delta', text: 'a' });
      const read = collect(reader.read(id, 0, new AbortController().signal));
      // Quiet for several liveness TTLs: the reader checks many times and finds the producer alive.
      const quietUntil = Date.now() + 500;
      await waitFor(() => Date.now() > quietUntil, 'several liveness TTLs');
      producer.append(id, 2, { type: 'delta', text: 'b' });
      producer.finish(id, 2);
      expect((await read).map((e) => e.event)).toEqual([
        { type: 'delta', text: 'a' },
        { type: 'delta', text: 'b' },
      ]);
      await producer.close();
      await reader.close();
    });

    it('issue 24.7: every reader of an instance shares one Redis connection, each getting its own stream from its own cursor', async () => {
      const prefix = `test-rsb-${randomUUID()}`;
      const duplicate = vi.spyOn(redis, 'duplicate');
      const producer = new RedisStreamBuffer({ redis, prefix, flushIntervalMs: 0 });
      const reader = new RedisStreamBuffer({ redis, prefix, blockMs: 50 });
      try {
        const ids = Array.from({ length: 50 }, () => randomUUID());
        for (const id of ids) {
          producer.create(id, 'ivy');
          producer.append(id, 1, { type: 'delta', text: `first of ${id}` });
        }
        await producer.flushed();
        // 50 streams and a second reader of the first, each past its first read (what it resumes
        // into) before the rest is written: the rest comes live, through the shared reads.
        const readers = [...ids, ids[0]!].map((id) => reader.read(id, 0, new AbortController().signal));
        const firsts = await Promise.all(readers.map((r) => r.next()));
        expect(firsts.map((f) => (f.value as { id: string }).id)).toEqual(readers.map(() => '1'));
        const reads = readers.map((r) => collect(r));
        for (const id of ids) {
          producer.append(id, 2, { type: 'delta', text: `second of ${id}` });
          producer.append(id, 3, { type: 'delta', text: `third of ${id}` });
          producer.finish(id, 3);
        }
        await producer.flushed();
        const results = await Promise.all(reads);
        [...ids, ids[0]!].forEach((id, i) => expect(results[i]!.map((e) => e.id + (e.event.type === 'delta' ? e.event.text : ''))).toEqual([`2second of ${id}`, `3third of ${id}`]));
        // A later resume from its own cursor.
        expect((await collect(reader.read(ids[0]!, 2, new AbortController().signal))).map((e) => e.id)).toEqual(['3']);
        // One connection for the blocking reads, however many readers (there was one per reader);
        // on a cluster one per stream bucket followed (a bucket left unfollowed drops its own, and
        // the later resume opens it again).
        if (topology.cluster) expect(duplicate.mock.calls.length).toBeLessThanOrEqual(STREAM_BUCKETS + 1);
        else expect(duplicate).toHaveBeenCalledTimes(1);
        expect(reader.readers).toBe(0);
      } finally {
        duplicate.mockRestore();
        await producer.close();
        await reader.close();
      }
    });
  });
});
