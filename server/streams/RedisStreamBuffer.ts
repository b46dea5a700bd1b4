import type { Redis } from 'ioredis';
import { streamEventSchema, type StreamEvent } from '../../shared';
import type { BufferedEvent, DurableStreamBuffer, DurableWriteProgress } from './types';

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
   * A fixed time appends are gathered before they go out (0 = at the end of the current
   * macrotask). Default: adaptive, see `writesPerSecond`.
   */
  flushIntervalMs?: number;
  /**
   * Without `flushIntervalMs`, appends are gathered for as long as keeps the XADDs of every
   * stream being written under this rate: streams / rate, between 10 ms and 1 s (1,000 streams:
   * 250 ms; 10 streams: 10 ms). Default 4,000/s. The local subscriber never waits for this
   * copy; only a reader on another instance sees events up to one interval later.
   */
  writesPerSecond?: number;
}

/**
 * Chat streams in Redis: one Redis Stream per chat stream with explicit ids `0-<seq>`, so
 * "resume after event N" is `XREAD ... 0-N`. The end is an entry with an `end` field.
 * Readers block on their own connection (a blocking XREAD holds the connection it runs on).
 *
 * Writes are batched: events appended within one flush interval, across every stream, go out as
 * one flush, each stream's events in order and together in one XADD entry (field `b`, a JSON
 * array; `e` for a single event) whose id is the last event's seq. One MULTI of four commands
 * per event was ~100,000 Redis commands/s at 1,000 streams (issue #8), more than Redis keeps
 * up with on a small box; and at a fixed 100 ms (10,000 XADDs/s there) the commands awaiting
 * their replies were most of what outlived the gateway's young generation. TTLs are set at
 * create and finish and renewed only once a quarter of the TTL has passed, not per event.
 * Ordering needs no transaction: one connection runs commands in the order they were sent.
 */
export class RedisStreamBuffer implements DurableStreamBuffer {
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly blockMs: number;
  private readonly readers = new Set<Redis>();
  /** Streams this instance writes, until their end is sent. */
  private readonly writers = new Map<string, StreamWriter>();
  /** Writers with something for the next flush, in the order they first had it. */
  private queue: StreamWriter[] = [];
  private flushScheduled = false;
  private flushTimer: NodeJS.Timeout | undefined;
  /** A flush's pipelines are still going out, one per turn (writeBatches). */
  private sending = false;
  /** A flush came due while `sending`: it runs when that one's last pipeline is out. */
  private flushDeferred = false;
  /** Callers of flushed() waiting for the next flush to be written. */
  private flushWaiters: (() => void)[] = [];
  /** The last pipeline sent: replies come in order, so its settling means all before it did. */
  private lastSent: Promise<unknown> = Promise.resolve();
  private readonly flushIntervalMs: number | undefined;
  private readonly writesPerSecond: number;

  constructor(private readonly options: RedisStreamBufferOptions) {
    this.prefix = options.prefix ?? 'keyrack';
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.blockMs = options.blockMs ?? 2_000;
    this.flushIntervalMs = options.flushIntervalMs;
    this.writesPerSecond = options.writesPerSecond ?? 4_000;
  }

  private keys(streamId: string) {
    const base = `${this.prefix}:{chat:${streamId}}`;
    return { owner: `${base}:owner`, events: `${base}:events` };
  }

  create(streamId: string, owner: string, progress?: DurableWriteProgress): void {
    // The events key does not exist yet: its TTL is set with the first batch (renewedAt 0).
    const writer = this.writerOf(streamId);
    writer.progress = progress;
    this.options.redis.set(writer.keys.owner, owner, 'PX', this.ttlMs).catch((error: unknown) => progress?.failed(error));
  }

  append(streamId: string, seq: number, event: StreamEvent): void {
    const writer = this.writerOf(streamId);
    writer.events.push(event);
    writer.lastSeq = seq;
    this.enqueue(writer);
  }

  finish(streamId: string, seq: number): void {
    const writer = this.writerOf(streamId);
    writer.endSeq = seq + 1;
    this.enqueue(writer);
  }

  flushed(): Promise<void> {
    return new Promise((resolve) => {
      this.flushWaiters.push(resolve);
      this.flush();
    });
  }

  private writerOf(streamId: string): StreamWriter {
    let writer = this.writers.get(streamId);
    if (!writer) {
      writer = { streamId, keys: this.keys(streamId), events: [], lastSeq: 0, endSeq: null, renewedAt: 0, queued: false, progress: undefined };
      this.writers.set(streamId, writer);
    }
    return writer;
  }

  private enqueue(writer: StreamWriter): void {
    if (!writer.queued) {
      writer.queued = true;
      this.queue.push(writer);
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      const interval = this.flushIntervalMs ?? Math.min(1_000, Math.max(10, (this.writers.size * 1_000) / this.writesPerSecond));
      if (interval > 0) this.flushTimer = setTimeout(() => this.flush(), interval);
      else setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    // One flush at a time: a stream's later batch must not go out before its earlier one, which
    // may sit in a pipeline of the flush still being sent (Redis refuses an XADD id that does
    // not grow; under load a timer fires between those turns, issue #8).
    if (this.sending) {
      this.flushDeferred = true;
      return;
    }
    this.flushScheduled = false;
    clearTimeout(this.flushTimer);
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    const writers = this.queue;
    this.queue = [];
    if (writers.length === 0) {
      if (waiters.length > 0) void this.lastSent.finally(() => waiters.forEach((wake) => wake()));
      return;
    }
    this.sending = true;
    this.writeBatches(writers, 0, waiters);
  }

  /**
   * Writes writers[from..] as pipelines of STREAMS_PER_PIPELINE streams, one per event-loop turn:
   * one pipeline for 1,000 streams was one long task (1,000 streams x 20 events/s alone: event-loop
   * delay max 42 ms, p99 5.7 ms; in pipelines of 200: 11 ms, 3.7 ms; issue #8).
   * The next flush starts only after the last of these pipelines is sent (see flush).
   */
  private writeBatches(writers: StreamWriter[], from: number, waiters: (() => void)[]): void {
    const to = Math.min(writers.length, from + STREAMS_PER_PIPELINE);
    const last = to === writers.length;
    if (!last) setImmediate(() => this.writeBatches(writers, to, waiters));
    const pipeline = this.options.redis.pipeline();
    const now = Date.now();
    /** Per stream: its writer, how many commands it queued and the seq they hold. */
    const spans: [StreamWriter, number, number][] = [];
    for (let i = from; i < to; i += 1) {
      const writer = writers[i]!;
      writer.queued = false;
      const { keys, events } = writer;
      let commands = 0;
      // Consecutive events of one stream share one entry, its id the last one's seq: a reader
      // resuming after N reads the entry holding N+1 and skips what it had. Serialized here,
      // not at append: a string per event lived until the flush.
      if (events.length === 1) {
        pipeline.xadd(keys.events, `0-${writer.lastSeq}`, 'e', JSON.stringify(events[0]));
        commands += 1;
      } else if (events.length > 1) {
        pipeline.xadd(keys.events, `0-${writer.lastSeq}`, 'b', JSON.stringify(events));
        commands += 1;
      }
      events.length = 0;
      const ended = writer.endSeq !== null;
      if (ended) {
        pipeline.xadd(keys.events, `0-${writer.endSeq}`, 'end', '1');
        commands += 1;
      }
      if (ended || now - writer.renewedAt >= this.ttlMs / 4) {
        pipeline.pexpire(keys.events, this.ttlMs).pexpire(keys.owner, this.ttlMs);
        commands += 2;
        writer.renewedAt = now;
      }
      if (ended) this.writers.delete(writer.streamId);
      spans.push([writer, commands, ended ? writer.endSeq! : writer.lastSeq]);
    }
    const sent = pipeline.exec().then(
      (results) => {
        let at = 0;
        for (const [writer, commands, seq] of spans) {
          const failed = results?.slice(at, at + commands).find(([error]) => error)?.[0];
          at += commands;
          if (failed) writer.progress?.failed(failed);
          else writer.progress?.written(seq);
        }
      },
      (error: unknown) => {
        for (const [writer] of spans) writer.progress?.failed(error ?? new Error('pipeline failed'));
      },
    );
    this.lastSent = sent;
    if (last) {
      this.sending = false;
      if (waiters.length > 0) void sent.finally(() => waiters.forEach((wake) => wake()));
      if (this.flushDeferred) {
        this.flushDeferred = false;
        // A microtask: after this pipeline was handed to the connection above, so it goes first.
        queueMicrotask(() => this.flush());
      }
    }
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
    if (this.queue.length > 0) this.flush();
    for (const reader of this.readers) reader.disconnect();
    this.readers.clear();
  }
}

/** Streams per Redis pipeline in one flush (see writeBatches). */
const STREAMS_PER_PIPELINE = 200;

/** One stream this instance writes: what it has queued for the next flush, and its TTL renewal. */
interface StreamWriter {
  readonly streamId: string;
  readonly keys: { owner: string; events: string };
  /** Events since the last flush, consecutive seqs ending at lastSeq (serialized at the flush). */
  readonly events: StreamEvent[];
  lastSeq: number;
  /** The end entry's seq once finish() was called. */
  endSeq: number | null;
  /** When the TTLs were last set (ms, Date.now); 0 = never. */
  renewedAt: number;
  /** In the queue for the next flush. */
  queued: boolean;
  progress: DurableWriteProgress | undefined;
}
