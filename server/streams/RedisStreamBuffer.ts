import type { Redis } from 'ioredis';
import { streamEventSchema } from '../../shared';
import type { BufferedEvent, DurableStreamBuffer } from './types';

export interface RedisStreamBufferOptions {
  redis: Redis;
  prefix?: string;
  /**
   * A stream's copy lives this long after its last renewal: set at create, renewed by a write
   * once a quarter of it has passed, and at finish. Default 5 minutes.
   */
  ttlMs?: number;
  /** How long one blocking read waits before checking that the stream still exists. Default 2 s. */
  blockMs?: number;
  /**
   * Appends are gathered this long before they go out, so one XADD carries several events of a
   * stream. 0 = at the end of the current macrotask. Default 100 ms: the local subscriber never
   * waits for this copy; only a resume on another instance sees it up to this much later.
   */
  flushIntervalMs?: number;
}

/**
 * Chat streams in Redis: one Redis Stream per chat stream with explicit ids `0-<seq>`, so
 * "resume after event N" is `XREAD ... 0-N`. The end is an entry with an `end` field.
 * Readers block on their own connection (a blocking XREAD holds the connection it runs on).
 *
 * Writes are batched: events appended within `flushIntervalMs`, across every stream, go out as
 * one pipeline, each stream's events in order and together in one XADD entry (field `b`, a JSON
 * array; `e` for a single event) whose id is the last event's seq. One MULTI of four commands
 * per event was ~100,000 Redis commands/s at 1,000 streams (issue #8), more than Redis keeps
 * up with on a small box. TTLs are set at create and finish and renewed only once a quarter of
 * the TTL has passed, not per event. Ordering needs no transaction: one connection runs
 * commands in the order they were sent.
 */
export class RedisStreamBuffer implements DurableStreamBuffer {
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly blockMs: number;
  private readonly readers = new Set<Redis>();
  /** Streams this instance writes: when their TTLs were last set (ms, Date.now). */
  private readonly renewedAt = new Map<string, number>();
  private pending = new Map<string, Batch>();
  private flushScheduled = false;
  private flushTimer: NodeJS.Timeout | undefined;
  /** A flush's pipelines are still going out, one per turn (writeBatches). */
  private sending = false;
  /** A flush came due while `sending`: it runs when that one's last pipeline is out. */
  private flushDeferred = false;
  private readonly flushIntervalMs: number;

  constructor(private readonly options: RedisStreamBufferOptions) {
    this.prefix = options.prefix ?? 'keyrack';
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.blockMs = options.blockMs ?? 2_000;
    this.flushIntervalMs = options.flushIntervalMs ?? 100;
  }

  private keys(streamId: string) {
    const base = `${this.prefix}:{chat:${streamId}}`;
    return { owner: `${base}:owner`, events: `${base}:events` };
  }

  async create(streamId: string, owner: string): Promise<void> {
    // The events key does not exist yet: its TTL is set with the first batch (renewedAt 0).
    this.renewedAt.set(streamId, 0);
    await this.options.redis.set(this.keys(streamId).owner, owner, 'PX', this.ttlMs);
  }

  /** Resolves once the batch holding this event is written. Calls need not wait for each other. */
  append(streamId: string, seq: number, event: unknown): Promise<void> {
    const batch = this.batchOf(streamId);
    batch.events.push(JSON.stringify(event));
    batch.lastSeq = seq;
    return batch.written;
  }

  finish(streamId: string, seq: number): Promise<void> {
    const batch = this.batchOf(streamId);
    batch.endId = `0-${seq + 1}`;
    return batch.written;
  }

  private batchOf(streamId: string): Batch {
    let batch = this.pending.get(streamId);
    if (!batch) {
      let settle!: (error?: unknown) => void;
      const written = new Promise<void>((resolve, reject) => (settle = (error) => (error === undefined ? resolve() : reject(error))));
      // A caller that does not await still must not leave an unhandled rejection behind.
      written.catch(() => {});
      batch = { events: [], lastSeq: 0, endId: null, written, settle };
      this.pending.set(streamId, batch);
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      if (this.flushIntervalMs > 0) this.flushTimer = setTimeout(() => this.flush(), this.flushIntervalMs);
      else setImmediate(() => this.flush());
    }
    return batch;
  }

  private flush(): void {
    this.flushScheduled = false;
    clearTimeout(this.flushTimer);
    // One flush at a time: a stream's later batch must not go out before its earlier one, which
    // may sit in a pipeline of the flush still being sent (Redis refuses an XADD id that does
    // not grow; under load a timer fires between those turns, issue #8).
    if (this.sending) {
      this.flushDeferred = true;
      return;
    }
    if (this.pending.size === 0) return;
    const batches = [...this.pending];
    this.pending = new Map();
    this.sending = true;
    this.writeBatches(batches, 0);
  }

  /**
   * Writes batches[from..] as pipelines of STREAMS_PER_PIPELINE streams, one per event-loop turn:
   * one pipeline for 1,000 streams was one long task (1,000 streams x 20 events/s alone: event-loop
   * delay max 42 ms, p99 5.7 ms; in pipelines of 200: 11 ms, 3.7 ms; issue #8).
   * The next flush starts only after the last of these pipelines is sent (see flush).
   */
  private writeBatches(batches: [string, Batch][], from: number): void {
    const to = Math.min(batches.length, from + STREAMS_PER_PIPELINE);
    if (to < batches.length) setImmediate(() => this.writeBatches(batches, to));
    else {
      this.sending = false;
      if (this.flushDeferred) {
        this.flushDeferred = false;
        // After this pipeline is queued below: same connection, so it reaches Redis first.
        queueMicrotask(() => this.flush());
      }
    }
    const pipeline = this.options.redis.pipeline();
    const now = Date.now();
    /** Per stream: its batch and how many commands it queued. */
    const spans: [Batch, number][] = [];
    for (let i = from; i < to; i += 1) {
      const [streamId, batch] = batches[i]!;
      const k = this.keys(streamId);
      let commands = 0;
      // Consecutive events of one stream share one entry, its id the last one's seq: a reader
      // resuming after N reads the entry holding N+1 and skips what it had.
      if (batch.events.length === 1) {
        pipeline.xadd(k.events, `0-${batch.lastSeq}`, 'e', batch.events[0]!);
        commands += 1;
      } else if (batch.events.length > 1) {
        pipeline.xadd(k.events, `0-${batch.lastSeq}`, 'b', `[${batch.events.join(',')}]`);
        commands += 1;
      }
      if (batch.endId !== null) {
        pipeline.xadd(k.events, batch.endId, 'end', '1');
        commands += 1;
      }
      const renewed = this.renewedAt.get(streamId) ?? 0;
      if (batch.endId !== null || now - renewed >= this.ttlMs / 4) {
        pipeline.pexpire(k.events, this.ttlMs).pexpire(k.owner, this.ttlMs);
        commands += 2;
        this.renewedAt.set(streamId, now);
      }
      if (batch.endId !== null) this.renewedAt.delete(streamId);
      spans.push([batch, commands]);
    }
    pipeline.exec().then(
      (results) => {
        let at = 0;
        for (const [batch, commands] of spans) {
          const failed = results?.slice(at, at + commands).find(([error]) => error)?.[0];
          at += commands;
          batch.settle(failed ?? undefined);
        }
      },
      (error: unknown) => {
        for (const [batch] of spans) batch.settle(error ?? new Error('pipeline failed'));
      },
    );
  }

  async owner(streamId: string): Promise<string | null> {
    return this.options.redis.get(this.keys(streamId).owner);
  }

  async *read(streamId: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<BufferedEvent> {
    const k = this.keys(streamId);
    const reader = this.options.redis.duplicate();
    this.readers.add(reader);
    // Disconnecting is the only way to interrupt a blocking XREAD.
    const onAbort = () => reader.disconnect();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      let cursor = `0-${afterSeq}`;
      while (!signal.aborted) {
        let reply: [string, [string, string[]][]][] | null;
        try {
          reply = (await reader.xread('BLOCK', this.blockMs, 'STREAMS', k.events, cursor)) as typeof reply;
        } catch (error) {
          if (signal.aborted) return;
          throw error;
        }
        if (!reply) {
          if ((await this.options.redis.exists(k.owner)) === 0) return; // expired
          continue;
        }
        for (const [, entries] of reply) {
          for (const [id, fields] of entries) {
            cursor = id;
            if (fields[0] === 'end') return;
            const last = Number(id.slice(2));
            const events = fields[0] === 'b' ? (JSON.parse(fields[1] ?? '[]') as unknown[]) : [JSON.parse(fields[1] ?? 'null') as unknown];
            for (let i = 0; i < events.length; i += 1) {
              const seq = last - events.length + 1 + i;
              if (seq <= afterSeq) continue;
              const parsed = streamEventSchema.safeParse(events[i]);
              if (!parsed.success) continue;
              yield { id: String(seq), event: parsed.data };
            }
          }
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.readers.delete(reader);
      reader.disconnect();
    }
  }

  async close(): Promise<void> {
    // Writes already queued still go out (the connection is the caller's to close).
    if (this.pending.size > 0) this.flush();
    for (const reader of this.readers) reader.disconnect();
    this.readers.clear();
  }
}

/** Streams per Redis pipeline in one flush (see writeBatches). */
const STREAMS_PER_PIPELINE = 200;

/** What one stream has queued for the next flush. */
interface Batch {
  /** JSON of each event, consecutive seqs ending at lastSeq. */
  events: string[];
  lastSeq: number;
  endId: string | null;
  written: Promise<void>;
  settle: (error?: unknown) => void;
}
