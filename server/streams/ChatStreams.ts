import { randomUUID } from 'node:crypto';
import type { ChatRequest, StreamEvent } from '../../shared';
import { lazyChild, type Logger } from '../observability/logger';
import type { ChatEngine } from './ChatEngine';
import type { BufferedEvent, DurableStreamBuffer } from './types';

export interface ChatStreamsOptions {
  engine: ChatEngine;
  logger: Logger;
  /** Write-through copy for resumes on other instances (Redis). Optional. */
  durable?: DurableStreamBuffer;
  /**
   * How long a stream nobody listens to keeps its upstream call: between chat.start and the
   * first subscribe, and after the last subscriber leaves. Long enough for the SSE client's
   * reconnect (the `eventsource` package waits ~3 s by default) to re-attach and resume without
   * a second upstream call; short enough that a closed tab stops billing soon. Default 5 s.
   */
  detachGraceMs?: number;
  /** How long chat.start's caller has to subscribe before the upstream call is aborted. Default 30 s. */
  attachTimeoutMs?: number;
  /** How long a finished stream stays resumable in this process. Default 5 minutes. */
  retainMs?: number;
  /**
   * chat.stream subscriptions one user may hold on this instance at once (follow and open
   * readers, local or from the durable copy); the next is refused with StreamLimitError until
   * one ends. Default 20 (issue 24.7: 300 resumes of one user were 300 Redis connections).
   */
  maxStreamsPerUser?: number;
}

/** A subscription over ChatStreamsOptions.maxStreamsPerUser; chat.stream answers TOO_MANY_REQUESTS. */
export class StreamLimitError extends Error {
  override readonly name = 'StreamLimitError';
  readonly code = 'too_many_streams';
  constructor(readonly limit: number) {
    super(`too many open streams: at most ${limit} per user at once; close one and retry`);
  }
}

/** Where ChatStreams.follow pushes a stream's events. */
export interface FollowSink {
  /** False: stop until `resume()` (the socket is full). */
  write(id: string, event: StreamEvent): boolean;
  end(): void;
}

export interface StartedStream {
  streamId: string;
  /** The stream's first event, or null when it ended without any. */
  first: StreamEvent | null;
  /** Its events so far (at most `maxEvents` of start's input), from id "1" on. */
  events: BufferedEvent[];
}

const DEFAULT_GRACE_MS = 5_000;
const DEFAULT_RETAIN_MS = 5 * 60_000;
export const DEFAULT_MAX_STREAMS_PER_USER = 20;

/** Where a local reader is: it has written the events up to seq `at`. */
interface Cursor {
  at: number;
}

/**
 * Events dropped from memory at a time: a splice per this many, not per event. Small: a stream
 * read to its end keeps fewer than this many (plus what Redis has not yet confirmed) for the
 * rest of `retainMs`, where it kept every event before (issue #8).
 */
const TRIM_STEP = 8;

/**
 * One chat answer being produced in this process, with its events since `dropped`: with a
 * durable copy, the events every local reader has written and Redis holds leave memory (a
 * resume from before them reads Redis); without one, every event stays (the only copy).
 */
class LocalStream {
  /** Events dropped + 1 ... length, in order. */
  readonly events: StreamEvent[] = [];
  /** Events dropped from the front of `events` (seqs 1..dropped). */
  dropped = 0;
  /** The highest seq the durable copy has confirmed (0 without one). */
  durableSeq = 0;
  /** Readers of this process (follow, readLocal) and how far they are. */
  readonly cursors = new Set<Cursor>();
  finished = false;
  subscribers = 0;
  readonly upstream = new AbortController();
  private waiters: (() => void)[] = [];
  /** Told synchronously of every event and of the end (ChatStreams.follow). */
  readonly followers = new Set<() => void>();
  graceTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    readonly owner: string,
  ) {}

  /** Events so far, the seq of the last one. */
  get length(): number {
    return this.dropped + this.events.length;
  }

  /** The event with this seq (1-based); undefined when dropped or not yet here. */
  at(seq: number): StreamEvent | undefined {
    return this.events[seq - 1 - this.dropped];
  }

  push(event: StreamEvent): void {
    this.events.push(event);
    this.wake();
    this.trim();
  }

  /**
   * Drops the events every reader has written and the durable copy holds. Only with readers:
   * a stream nobody reads right now (between chat.start and chat.stream, or while its client
   * reconnects) keeps everything, so the reconnect is served from here.
   */
  trim(): void {
    if (this.cursors.size === 0) return;
    let upTo = this.durableSeq;
    for (const cursor of this.cursors) if (cursor.at < upTo) upTo = cursor.at;
    if (upTo - this.dropped < TRIM_STEP) return;
    this.events.splice(0, upTo - this.dropped);
    this.dropped = upTo;
  }

  finish(): void {
    this.finished = true;
    this.wake();
  }

  /**
   * Resolves on the next event or the end. Callers that also stop on a signal wake themselves
   * (readLocal registers one abort listener for its whole life, not one per event).
   */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes every waiter now (a reader whose signal aborted). */
  wakeAll(): void {
    this.wake();
  }

  private wake(): void {
    for (const follower of this.followers) follower();
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Chat streams between chat.start and chat.stream: runs each upstream call once, buffers its
 * events so a reconnecting client resumes after its last event id, and aborts the upstream
 * call when nobody has listened for `detachGraceMs`.
 */
export class ChatStreams {
  private readonly streams = new Map<string, LocalStream>();
  private readonly graceMs: number;
  private readonly retainMs: number;
  private readonly attachTimeoutMs: number;
  private readonly maxPerUser: number;
  /** Subscriptions held per user right now (users with none are not in the map). */
  private readonly subscriptions = new Map<string, number>();
  private closed = false;

  constructor(private readonly options: ChatStreamsOptions) {
    this.graceMs = options.detachGraceMs ?? DEFAULT_GRACE_MS;
    this.retainMs = options.retainMs ?? DEFAULT_RETAIN_MS;
    this.attachTimeoutMs = options.attachTimeoutMs ?? 30_000;
    this.maxPerUser = options.maxStreamsPerUser ?? DEFAULT_MAX_STREAMS_PER_USER;
  }

  /**
   * Starts the upstream call and resolves with the first event, so the caller can refuse the
   * start itself (every key busy, unknown model) instead of handing out a stream of one error.
   */
  async start(input: { chat: ChatRequest; userId: string; requestId?: string; signal?: AbortSignal; maxEvents?: number }): Promise<StartedStream> {
    if (this.closed) {
      const first: StreamEvent = { type: 'error', code: 'shutting_down', message: 'gateway is shutting down' };
      return { streamId: randomUUID(), first, events: [{ id: '1', event: first }] };
    }
    const stream = new LocalStream(randomUUID(), input.userId);
    this.streams.set(stream.id, stream);
    const { durable } = this.options;
    const log = lazyChild(this.options.logger, { streamId: stream.id, requestId: input.requestId });
    // Durable writes are handed over in order without waiting (the buffer keeps their order
    // and batches them); a failed write is logged, not fatal: the local copy still serves this
    // instance's subscribers. Once the copy holds an event, it may leave memory (LocalStream.trim).
    durable?.create(stream.id, input.userId, {
      written: (seq) => {
        if (seq <= stream.durableSeq) return;
        stream.durableSeq = seq;
        stream.trim();
      },
      failed: (error) => log.warn({ err: error instanceof Error ? error.message : String(error) }, 'durable stream buffer write failed'),
    });

    this.armGrace(stream, this.attachTimeoutMs);
    void (async () => {
      try {
        // Buffered, never held back: the stream's readers pace themselves (follow, readLocal).
        await this.options.engine.run(
          {
            chat: input.chat,
            userId: input.userId,
            signal: stream.upstream.signal,
            controller: stream.upstream,
            ...(input.requestId !== undefined ? { requestId: input.requestId } : {}),
          },
          (event) => {
            stream.push(event);
            durable?.append(stream.id, stream.length, event);
          },
        );
      } catch (error) {
        // The engine promises not to reject; if it does, the client still gets a proper end.
        log.error({ err: error instanceof Error ? error.message : String(error) }, 'chat engine threw');
        const event: StreamEvent = { type: 'error', code: 'internal', message: 'internal error' };
        stream.push(event);
        durable?.append(stream.id, stream.length, event);
      } finally {
        clearTimeout(stream.graceTimer);
        stream.finish();
        durable?.finish(stream.id, stream.length);
        setTimeout(() => this.streams.delete(stream.id), this.retainMs).unref();
      }
    })();

    const onCallerAbort = () => stream.upstream.abort();
    input.signal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      while (stream.length === 0 && !stream.finished) await stream.changed();
    } finally {
      input.signal?.removeEventListener('abort', onCallerAbort);
    }
    // Nothing is dropped yet: there is no reader before chat.start has answered.
    const count = Math.min(stream.length, input.maxEvents ?? 0);
    const events: BufferedEvent[] = [];
    for (let seq = 1; seq <= count; seq += 1) events.push({ id: String(seq), event: stream.at(seq)! });
    return { streamId: stream.id, first: stream.at(1) ?? null, events };
  }

  /**
   * The events of a stream after `lastEventId`, live until it ends; null when the stream does
   * not exist or belongs to someone else (the caller cannot tell the two apart). Throws
   * StreamLimitError when the user holds maxStreamsPerUser subscriptions already; otherwise the
   * returned reader holds one from now until it ends, so call it.
   */
  async open(input: { streamId: string; userId: string; lastEventId?: string | null }): Promise<((signal: AbortSignal) => AsyncGenerator<BufferedEvent>) | null> {
    const after = input.lastEventId ? Number(input.lastEventId) : 0;
    const local = this.streams.get(input.streamId);
    const { durable } = this.options;
    const { userId } = input;
    if (local) {
      if (local.owner !== userId) return null;
      this.takeSubscription(userId);
      // readLocal reads the durable copy for events that have left memory.
      return (signal) => this.holding(userId, this.readLocal(local, after, signal));
    }
    if (!durable) return null;
    // Refused before the owner lookup too: over the cap costs no Redis round trip.
    if ((this.subscriptions.get(userId) ?? 0) >= this.maxPerUser) throw new StreamLimitError(this.maxPerUser);
    const owner = await durable.owner(input.streamId);
    if (owner === null || owner !== userId) return null;
    this.takeSubscription(userId);
    return (signal) => this.holding(userId, durable.read(input.streamId, after, signal));
  }

  /** Subscriptions this user holds on this instance right now. */
  subscriptionsOf(userId: string): number {
    return this.subscriptions.get(userId) ?? 0;
  }

  private takeSubscription(userId: string): void {
    const held = this.subscriptions.get(userId) ?? 0;
    if (held >= this.maxPerUser) throw new StreamLimitError(this.maxPerUser);
    this.subscriptions.set(userId, held + 1);
  }

  private releaseSubscription(userId: string): void {
    const held = this.subscriptions.get(userId) ?? 0;
    if (held <= 1) this.subscriptions.delete(userId);
    else this.subscriptions.set(userId, held - 1);
  }

  private async *holding(userId: string, read: AsyncGenerator<BufferedEvent>): AsyncGenerator<BufferedEvent> {
    try {
      yield* read;
    } finally {
      this.releaseSubscription(userId);
    }
  }

  /**
   * A stream of this process, pushed to `sink` as events arrive: no generator, promise or
   * wrapper per event (issue #8: the SSE path of chat.stream). Null when the stream is not
   * here or not the user's; then `open` (which also reads the durable copy) decides.
   * `start()` writes what the stream has after `lastEventId`, then each event as it comes,
   * pausing while `sink.write` returns false until `resume()`; `sink.end()` at the end. The
   * signal detaches the follower (client gone); the grace timer then runs as for any reader.
   * Throws StreamLimitError as `open` does; the follower holds its subscription until it stops.
   */
  follow(input: { streamId: string; userId: string; lastEventId?: string | null }, sink: FollowSink, signal: AbortSignal): { start(): void; resume(): void } | null {
    const stream = this.streams.get(input.streamId);
    if (!stream || stream.owner !== input.userId) return null;
    const cursor: Cursor = { at: input.lastEventId ? Number(input.lastEventId) : 0 };
    // A resume from before what memory holds: `open` serves it from the durable copy.
    if (cursor.at < stream.dropped) return null;
    const { userId } = input;
    this.takeSubscription(userId);
    let paused = false;
    let closed = false;
    let started = false;
    // The cursor counts from now, so nothing it still needs is dropped before start().
    stream.cursors.add(cursor);
    const stop = () => {
      if (closed) return;
      closed = true;
      this.releaseSubscription(userId);
      stream.cursors.delete(cursor);
      stream.followers.delete(onChange);
      signal.removeEventListener('abort', stop);
      if (!started) return;
      stream.subscribers -= 1;
      if (stream.subscribers === 0 && !stream.finished) this.armGrace(stream, this.graceMs);
    };
    const pump = () => {
      while (!closed && cursor.at < stream.length) {
        const event = stream.at(cursor.at + 1)!;
        cursor.at += 1;
        if (!sink.write(String(cursor.at), event)) {
          paused = true;
          return;
        }
      }
      paused = false;
      if (!closed && stream.finished) {
        stop();
        sink.end();
      }
    };
    const onChange = () => {
      if (paused || closed) return;
      try {
        pump();
      } catch (error) {
        // A sink that throws must not break the producer's loop; it loses its subscriber.
        this.options.logger.error({ streamId: stream.id, err: error instanceof Error ? error.message : String(error) }, 'stream follower failed');
        stop();
      }
    };
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
    return {
      start: () => {
        if (closed || started) return;
        started = true;
        stream.subscribers += 1;
        clearTimeout(stream.graceTimer);
        stream.followers.add(onChange);
        onChange();
      },
      resume: () => {
        paused = false;
        onChange();
      },
    };
  }

  /** Streams still producing in this process. */
  get active(): number {
    let n = 0;
    for (const s of this.streams.values()) if (!s.finished) n += 1;
    return n;
  }

  /** Aborts every running upstream call; their streams end with `done: aborted`. */
  close(): void {
    this.closed = true;
    for (const s of this.streams.values()) s.upstream.abort();
  }

  private async *readLocal(stream: LocalStream, after: number, signal: AbortSignal): AsyncGenerator<BufferedEvent> {
    const { durable } = this.options;
    // Events from before what memory holds are in the durable copy (they left only once it had them).
    if (after < stream.dropped && durable) {
      yield* durable.read(stream.id, after, signal);
      return;
    }
    stream.subscribers += 1;
    clearTimeout(stream.graceTimer);
    const cursor: Cursor = { at: after };
    stream.cursors.add(cursor);
    const onAbort = () => stream.wakeAll();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        while (cursor.at < stream.length) {
          const event = stream.at(cursor.at + 1)!;
          cursor.at += 1;
          yield { id: String(cursor.at), event };
        }
        if (stream.finished) return;
        await stream.changed();
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      stream.cursors.delete(cursor);
      stream.subscribers -= 1;
      if (stream.subscribers === 0 && !stream.finished) this.armGrace(stream, this.graceMs);
    }
  }

  private armGrace(stream: LocalStream, ms: number): void {
    clearTimeout(stream.graceTimer);
    const abort = () => {
      if (stream.subscribers === 0 && !stream.finished) {
        this.options.logger.debug({ streamId: stream.id }, 'no subscriber left; aborting upstream');
        stream.upstream.abort();
      }
    };
    if (ms <= 0) queueMicrotask(abort);
    else {
      stream.graceTimer = setTimeout(abort, ms);
      stream.graceTimer.unref();
    }
  }
}
