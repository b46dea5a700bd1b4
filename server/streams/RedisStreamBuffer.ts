import { randomUUID } from 'node:crypto';
import { isClusterClient, type RedisClient } from '../ops/redisClient';
import type { StreamEvent } from '../../shared';
import { RedisStreamFollowers } from './RedisStreamFollowers';
import { streamAlivePrefix, streamKeysOf, type StreamKeys } from './streamKeys';
import type { BufferedEvent, DurableStreamBuffer, DurableWriteProgress } from './types';

export interface RedisStreamBufferOptions {
  redis: RedisClient;
  prefix?: string;
  /**
   * A stream's copy lives this long after its last renewal: set at create, renewed by a write
   * once a quarter of it has passed, and at finish. Default 5 minutes.
   */
  ttlMs?: number;
  /** Longest the instance's one blocking XREAD (every reader's) waits before it is issued again. Default 250 ms. */
  blockMs?: number;
  /**
   * A reader that heard nothing for this long checks that its stream still exists and that its
   * producer still runs. Default 1 s.
   */
  checkMs?: number;
  /**
   * While this instance writes streams it refreshes its liveness key every `heartbeatMs`, with
   * this TTL: a reader elsewhere that finds the key gone (the instance was killed, SIGKILL or
   * OOM, and wrote no end) ends with `stream_interrupted`. Defaults 1 s and 3 s: a producer's
   * event loop may stall for 2 s before readers give up on it.
   */
  heartbeatMs?: number;
  livenessTtlMs?: number;
  /** Names this instance in its streams' producer keys. Default: a random UUID per buffer. */
  instanceId?: string;
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
 * Every reader of this instance shares one blocking connection (RedisStreamFollowers).
 *
 * Liveness (issue 24.6): each stream's producer key names the instance writing it, and that
 * instance keeps `<prefix>:streams:alive:<id>` alive with one SET every `heartbeatMs` however
 * many streams it writes; a reader elsewhere ends with `stream_interrupted` once that key has
 * expired and the stream has no end.
 *
 * Writes are batched: events appended within one flush interval, across every stream, go out as
 * one flush, each stream's events in order and together in one XADD entry (field `b`, a JSON
 * array; readers also take `e`, one event, as earlier versions wrote it) whose id is the last
 * event's seq, 200 streams to a script call (writeBatches). One MULTI of four commands
 * per event was ~100,000 Redis commands/s at 1,000 streams (issue #8), more than Redis keeps
 * up with on a small box; and at a fixed 100 ms (10,000 XADDs/s there) the commands awaiting
 * their replies were most of what outlived the gateway's young generation. TTLs are set at
 * create and finish and renewed only once a quarter of the TTL has passed, not per event.
 * Ordering needs no transaction: one connection runs commands in the order they were sent.
 */
export class RedisStreamBuffer implements DurableStreamBuffer {
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly followers: RedisStreamFollowers;
  /** This instance's liveness key and the id its streams' producer keys hold. */
  private readonly aliveKey: string;
  private readonly instanceId: string;
  private readonly heartbeatMs: number;
  private readonly livenessTtlMs: number;
  private heartbeat: NodeJS.Timeout | undefined;
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
  /**
   * Settles once every batch sent so far has. On one connection that is the last batch sent
   * (replies come in order); on a cluster the batches go to the nodes of their buckets, whose
   * replies come in any order, so it is the last batch and the one before it (issue 22).
   */
  private lastSent: Promise<unknown> = Promise.resolve();
  private readonly flushIntervalMs: number | undefined;
  private readonly writesPerSecond: number;
  /** A Redis Cluster: a flush batch is split by bucket (one slot per script call, issue 22). */
  private readonly cluster: boolean;

  constructor(private readonly options: RedisStreamBufferOptions) {
    // defineCommand runs EVALSHA and falls back to EVAL (loading the script) on NOSCRIPT.
    options.redis.defineCommand('keyrackStreamWriteBatch', { lua: WRITE_BATCH });
    options.redis.defineCommand('keyrackStreamCreate', { numberOfKeys: 2, lua: CREATE });
    this.cluster = isClusterClient(options.redis);
    this.prefix = options.prefix ?? 'keyrack';
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.instanceId = options.instanceId ?? randomUUID();
    const alivePrefix = streamAlivePrefix(this.prefix);
    this.aliveKey = alivePrefix + this.instanceId;
    this.heartbeatMs = options.heartbeatMs ?? 1_000;
    this.livenessTtlMs = options.livenessTtlMs ?? 3_000;
    this.followers = new RedisStreamFollowers({ redis: options.redis, alivePrefix, cluster: this.cluster, blockMs: options.blockMs ?? 250, checkMs: options.checkMs ?? 1_000 });
    this.flushIntervalMs = options.flushIntervalMs;
    this.writesPerSecond = options.writesPerSecond ?? 4_000;
  }

  private keys(streamId: string): StreamKeys {
    return streamKeysOf(this.prefix, streamId);
  }

  create(streamId: string, owner: string, progress?: DurableWriteProgress): void {
    // The events key does not exist yet: its TTL is set with the first batch (renewedAt 0).
    const writer = this.writerOf(streamId);
    writer.progress = progress;
    // Owner and producer in one call (one command per stream start, as before). The liveness key
    // is another slot on a cluster: set by the heartbeat, at once when it starts (below).
    (this.options.redis as unknown as DurableScripts)
      .keyrackStreamCreate(writer.keys.owner, writer.keys.producer, owner, this.instanceId, this.ttlMs)
      .catch((error: unknown) => progress?.failed(error));
    this.startHeartbeat();
  }

  /**
   * One SET of the liveness key per beat while this instance writes any stream; it stops by
   * itself once the last stream's end has been handed to a flush (the key then expires).
   */
  private startHeartbeat(): void {
    if (this.heartbeat) return;
    // A failed beat is not reported: Redis away fails the writes that matter, and readers.
    const beat = () => void this.options.redis.set(this.aliveKey, '1', 'PX', this.livenessTtlMs).catch(() => undefined);
    beat();
    this.heartbeat = setInterval(() => {
      if (this.writers.size === 0) {
        clearInterval(this.heartbeat);
        this.heartbeat = undefined;
        return;
      }
      beat();
    }, this.heartbeatMs);
    this.heartbeat.unref();
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
   * Writes writers[from..] in batches of STREAMS_PER_BATCH streams, one per event-loop turn: one
   * batch for 1,000 streams was one long task (1,000 streams x 20 events/s alone: event-loop
   * delay max 42 ms, p99 5.7 ms; in batches of 200: 11 ms, 3.7 ms; issue #8).
   * A batch is one call of WRITE_BATCH (below), not a pipeline of XADDs and PEXPIREs: a command
   * object, a reply promise and a timeout timer per XADD were ~4,000 of each per second at 1,000
   * streams, and with them the durable copy cost the tRPC path ~12 us of CPU per event, ~20% of
   * all it spent (issue #8, BENCHMARKS.md). The next flush starts only after the last batch is
   * sent (see flush).
   */
  private writeBatches(writers: StreamWriter[], from: number, waiters: (() => void)[]): void {
    const to = Math.min(writers.length, from + STREAMS_PER_BATCH);
    const last = to === writers.length;
    if (!last) setImmediate(() => this.writeBatches(writers, to, waiters));
    const now = Date.now();
    let sent: Promise<void>;
    if (!this.cluster) sent = this.sendBatch(writers, from, to, now);
    else {
      // One call per bucket (slot) of the batch's streams: at most STREAM_BUCKETS.
      const byBucket = new Map<number, StreamWriter[]>();
      for (let i = from; i < to; i += 1) {
        const writer = writers[i]!;
        const group = byBucket.get(writer.keys.bucket);
        if (group) group.push(writer);
        else byBucket.set(writer.keys.bucket, [writer]);
      }
      sent = Promise.all([...byBucket.values()].map((group) => this.sendBatch(group, 0, group.length, now))).then(() => undefined);
    }
    const allSent = this.cluster ? Promise.all([this.lastSent, sent]) : sent;
    this.lastSent = allSent;
    if (last) {
      this.sending = false;
      if (waiters.length > 0) void allSent.finally(() => waiters.forEach((wake) => wake()));
      if (this.flushDeferred) {
        this.flushDeferred = false;
        // A microtask: after this batch was handed to the connection above, so it goes first.
        queueMicrotask(() => this.flush());
      }
    }
  }

  /** One WRITE_BATCH call for writers[from..to] (one slot on a cluster: see writeBatches). */
  private sendBatch(writers: StreamWriter[], from: number, to: number, now: number): Promise<void> {
    const count = to - from;
    // WRITE_BATCH's arguments: the key count, KEYS (events, owner, producer per stream), the
    // TTL, then ARGS_PER_STREAM per stream.
    const args: (string | number)[] = new Array(2 + count * KEYS_PER_STREAM + count * ARGS_PER_STREAM);
    args[0] = count * KEYS_PER_STREAM;
    let at = 1 + count * KEYS_PER_STREAM;
    args[at++] = this.ttlMs;
    /** Per stream: its writer and the seq the batch holds for it. */
    const spans: [StreamWriter, number][] = [];
    for (let i = from; i < to; i += 1) {
      const writer = writers[i]!;
      writer.queued = false;
      const { keys, events } = writer;
      args[1 + (i - from) * KEYS_PER_STREAM] = keys.events;
      args[2 + (i - from) * KEYS_PER_STREAM] = keys.owner;
      args[3 + (i - from) * KEYS_PER_STREAM] = keys.producer;
      // Consecutive events of one stream share one entry, its id the last one's seq: a reader
      // resuming after N reads the entry holding N+1 and skips what it had. Serialized here,
      // not at append: a string per event lived until the flush.
      args[at++] = events.length > 0 ? writer.lastSeq : '';
      args[at++] = events.length > 0 ? JSON.stringify(events) : '';
      events.length = 0;
      const ended = writer.endSeq !== null;
      args[at++] = ended ? writer.endSeq! : '';
      const renew = ended || now - writer.renewedAt >= this.ttlMs / 4;
      args[at++] = renew ? 1 : 0;
      if (renew) writer.renewedAt = now;
      if (ended) this.writers.delete(writer.streamId);
      spans.push([writer, ended ? writer.endSeq! : writer.lastSeq]);
    }
    return (this.options.redis as unknown as DurableScripts).keyrackStreamWriteBatch(...args).then(
      (errors) => {
        spans.forEach(([writer, seq], i) => {
          const error = errors[i];
          if (error) writer.progress?.failed(new Error(error));
          else writer.progress?.written(seq);
        });
      },
      (error: unknown) => {
        for (const [writer] of spans) writer.progress?.failed(error ?? new Error('durable stream write failed'));
      },
    );
  }

  async owner(streamId: string): Promise<string | null> {
    return this.options.redis.get(this.keys(streamId).owner);
  }

  read(streamId: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<BufferedEvent> {
    return this.followers.read(this.keys(streamId), afterSeq, signal);
  }

  /** Readers of this instance right now, all on one connection. */
  get readers(): number {
    return this.followers.size;
  }

  async close(): Promise<void> {
    // Writes already queued still go out (the connection is the caller's to close).
    if (this.queue.length > 0) this.flush();
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.followers.close();
  }
}

/** Streams per WRITE_BATCH call in one flush (see writeBatches). */
const STREAMS_PER_BATCH = 200;

/** WRITE_BATCH's KEYS per stream: events, owner, producer. */
const KEYS_PER_STREAM = 3;

/** WRITE_BATCH's ARGV per stream: last seq, events (JSON array), end seq, renew TTLs (1/0). */
const ARGS_PER_STREAM = 4;

/** A stream's start. KEYS: owner, producer. ARGV: the user, the instance id, the copy's TTL (ms). */
const CREATE = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`;

/**
 * One flush batch: per stream, its events as one entry (field `b`, id `0-<last seq>`), its end
 * entry, and the TTLs of its keys when due. KEYS: events, owner, producer key per stream. ARGV:
 * the TTL (ms), then ARGS_PER_STREAM per stream ('' where a stream has no events or no end yet).
 * Returns one string per stream: '' when written, else Redis's error (an XADD refused), so a
 * failure reaches only its own stream's writer; the other streams' writes still happen.
 */
const WRITE_BATCH = `
local ttl = ARGV[1]
local out = {}
for i = 1, #KEYS / ${KEYS_PER_STREAM} do
  local events, owner, producer = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local a = 2 + (i - 1) * ${ARGS_PER_STREAM}
  local failed = ''
  if ARGV[a + 1] ~= '' then
    local r = redis.pcall('XADD', events, '0-' .. ARGV[a], 'b', ARGV[a + 1])
    if type(r) == 'table' and r.err then failed = r.err end
  end
  if failed == '' and ARGV[a + 2] ~= '' then
    local r = redis.pcall('XADD', events, '0-' .. ARGV[a + 2], 'end', '1')
    if type(r) == 'table' and r.err then failed = r.err end
  end
  if ARGV[a + 3] == '1' then
    redis.call('PEXPIRE', events, ttl)
    redis.call('PEXPIRE', owner, ttl)
    redis.call('PEXPIRE', producer, ttl)
  end
  out[i] = failed
end
return out
`;

interface DurableScripts {
  keyrackStreamWriteBatch(...args: (string | number)[]): Promise<string[]>;
  keyrackStreamCreate(...args: (string | number)[]): Promise<number>;
}

/** One stream this instance writes: what it has queued for the next flush, and its TTL renewal. */
interface StreamWriter {
  readonly streamId: string;
  readonly keys: StreamKeys;
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
