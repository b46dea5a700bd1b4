import type { Redis } from 'ioredis';
import { streamEventSchema, type StreamEvent } from '../../shared';
import type { BufferedEvent } from './types';

/** The Redis keys of one chat stream (RedisStreamBuffer's layout). */
export interface StreamKeys {
  events: string;
  owner: string;
  /** Holds the id of the instance producing the stream; its liveness key is `<alivePrefix><id>`. */
  producer: string;
}

export interface RedisStreamFollowersOptions {
  /** The buffer's own connection: first reads and liveness checks (never blocking). */
  redis: Redis;
  /** Producers' liveness keys are this plus their instance id (RedisStreamBuffer's heartbeat). */
  alivePrefix: string;
  /** Longest the one blocking XREAD waits before it is issued again. */
  blockMs: number;
  /** A follower that heard nothing for this long has its stream's producer checked. */
  checkMs: number;
}

/** Entries read per stream per XREAD. */
const ENTRIES_PER_READ = 64;
/** A follower holding this many events its consumer has not taken is left out of reads until it has. */
const HIGH_WATER = 512;

/** What a follower's consumer is told once Redis shows its stream's producer is gone. */
const INTERRUPTED: StreamEvent = {
  type: 'error',
  code: 'stream_interrupted',
  message: 'the gateway instance producing this answer stopped before it finished; start the request again',
};

/** One reader of one stream (RedisStreamBuffer.read), fed by the shared loop. */
class Follower {
  /** Seq of the last entry read (entry ids are `0-<seq of its last event>`). */
  cursor: number;
  /** Events up to this seq were handed to the consumer or skipped (it had them). */
  delivered: number;
  /** Events read, not yet taken by the consumer; `head` is the next one. */
  queue: BufferedEvent[] = [];
  head = 0;
  /** Nothing more will be read: the end entry, an expired copy, a dead producer, or an error. */
  ended = false;
  error: unknown = null;
  /** Its first read (non-blocking) is done; from then on the blocking loop reads for it. */
  joined = false;
  /** When it last heard from Redis about its stream (data or a liveness check), ms. */
  heardAt: number;
  private waiter: (() => void) | null = null;

  constructor(
    readonly keys: StreamKeys,
    afterSeq: number,
    now: number,
  ) {
    this.cursor = afterSeq;
    this.delivered = afterSeq;
    this.heardAt = now;
  }

  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Wants the blocking loop to read for it: joined, not ended, not holding too much. */
  get reading(): boolean {
    return this.joined && !this.ended && this.pending < HIGH_WATER;
  }

  push(item: BufferedEvent): void {
    this.queue.push(item);
    this.delivered = Number(item.id);
  }

  take(): BufferedEvent | undefined {
    if (this.head >= this.queue.length) return undefined;
    const item = this.queue[this.head]!;
    this.head += 1;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    return item;
  }

  end(error: unknown = null): void {
    this.ended = true;
    this.error = error;
    this.notify();
  }

  changed(): Promise<void> {
    return new Promise((resolve) => (this.waiter = resolve));
  }

  notify(): void {
    const wake = this.waiter;
    this.waiter = null;
    wake?.();
  }
}

type XReadReply = [string, [string, string[]][]][] | null;

/**
 * Every Redis-backed chat stream reader of this instance on ONE connection (issue 24.7: a
 * connection per reader was 300 connections for 300 resumes, against Redis's 10,000 shared by
 * every instance): one blocking XREAD over all the streams followed here, its entries handed to
 * each stream's followers, issued again at once. A newcomer's first read (what it resumes into)
 * is a non-blocking XREAD on the buffer's own connection, gathered per turn, so it does not wait
 * for the blocking one to return; its live events then come from the next blocking read (at
 * most `blockMs` later). A follower whose consumer falls behind is left out until it has caught
 * up, so memory per follower stays bounded.
 *
 * A follower that heard nothing for `checkMs` has its stream checked (one script call for all
 * such streams): an expired copy ends it as before; a stream with no end entry whose producer's
 * liveness key expired (the instance died without writing the end, issue 24.6) ends with a
 * `stream_interrupted` error event instead of pings until the copy expires.
 */
export class RedisStreamFollowers {
  private readonly followers = new Set<Follower>();
  private readonly byKey = new Map<string, Set<Follower>>();
  private reader: Redis | null = null;
  private looping = false;
  private wakeLoop: (() => void) | null = null;
  private joining: Follower[] = [];
  private checking = false;
  private closed = false;

  constructor(private readonly options: RedisStreamFollowersOptions) {
    options.redis.defineCommand('keyrackStreamLiveness', { lua: LIVENESS });
  }

  /** Events after `afterSeq` until the stream's end, the copy's expiry, a dead producer or the signal. */
  async *read(keys: StreamKeys, afterSeq: number, signal: AbortSignal): AsyncGenerator<BufferedEvent> {
    if (this.closed) throw new Error('stream buffer closed');
    const follower = new Follower(keys, afterSeq, Date.now());
    this.add(follower);
    const onAbort = () => follower.notify();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        for (let item = follower.take(); item && !signal.aborted; item = follower.take()) {
          const wasFull = follower.pending + 1 >= HIGH_WATER;
          yield item;
          // Left out of reads while full: back in as soon as it has room.
          if (wasFull && follower.reading) this.wake();
        }
        if (signal.aborted) return;
        if (follower.ended) {
          if (follower.error !== null) throw follower.error;
          return;
        }
        await follower.changed();
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.remove(follower);
    }
  }

  /** Followers reading right now (tests, metrics). */
  get size(): number {
    return this.followers.size;
  }

  close(): void {
    this.closed = true;
    for (const follower of this.followers) follower.end(new Error('stream buffer closed'));
    this.reader?.disconnect();
    this.reader = null;
    this.wake();
  }

  private add(follower: Follower): void {
    this.followers.add(follower);
    let set = this.byKey.get(follower.keys.events);
    if (!set) {
      set = new Set();
      this.byKey.set(follower.keys.events, set);
    }
    set.add(follower);
    this.joining.push(follower);
    if (this.joining.length === 1) setImmediate(() => this.join());
  }

  private remove(follower: Follower): void {
    this.followers.delete(follower);
    const set = this.byKey.get(follower.keys.events);
    set?.delete(follower);
    if (set?.size === 0) this.byKey.delete(follower.keys.events);
    follower.ended = true;
  }

  /** The first read of every follower added this turn: one non-blocking XREAD. */
  private join(): void {
    const batch = this.joining.filter((f) => !f.ended);
    this.joining = [];
    if (batch.length === 0) return;
    const { keys, ids, from } = readArgs(batch);
    void (this.options.redis.xread('COUNT', ENTRIES_PER_READ, 'STREAMS', ...keys, ...ids) as Promise<XReadReply>).then(
      (reply) => {
        this.deliver(reply, from);
        for (const f of batch) f.joined = true;
        this.wake();
      },
      (error: unknown) => {
        for (const f of batch) f.end(error);
      },
    );
  }

  private wake(): void {
    if (!this.looping) {
      void this.loop();
      return;
    }
    const wake = this.wakeLoop;
    this.wakeLoop = null;
    wake?.();
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (!this.closed && this.followers.size > 0) {
        const reading: Follower[] = [];
        for (const f of this.followers) if (f.reading) reading.push(f);
        if (reading.length === 0) {
          // Every follower is joining or full: wait for one to be ready.
          await new Promise<void>((resolve) => (this.wakeLoop = resolve));
          continue;
        }
        const { keys, ids, from } = readArgs(reading);
        let reply: XReadReply;
        try {
          reply = (await this.connection().xread('COUNT', ENTRIES_PER_READ, 'BLOCK', this.options.blockMs, 'STREAMS', ...keys, ...ids)) as XReadReply;
        } catch (error) {
          if (this.closed) return;
          // The readers of the streams read hear of it (as each did on its own connection);
          // the others, and readers that come later, read again.
          for (const f of reading) f.end(error);
          continue;
        }
        this.deliver(reply, from);
        this.checkQuiet(reading);
      }
    } finally {
      this.looping = false;
    }
  }

  private connection(): Redis {
    if (!this.reader) {
      // A blocking XREAD holds the connection it runs on: this one is for the loop alone.
      this.reader = this.options.redis.duplicate();
      this.reader.on('error', () => {});
    }
    return this.reader;
  }

  /**
   * Hands each entry of the reply to the followers of its stream that have not read it. A reply
   * holds every entry after the id it was read from (up to ENTRIES_PER_READ): only followers
   * whose cursor is at or past that id take from it, so none skips an entry.
   */
  private deliver(reply: XReadReply, from: Map<string, number>): void {
    if (!reply) return;
    const now = Date.now();
    for (const [key, entries] of reply) {
      const set = this.byKey.get(key);
      const start = from.get(key);
      if (!set || start === undefined) continue;
      for (const [id, fields] of entries) {
        const last = Number(id.slice(2));
        // Parsed once per entry, shared by every follower of the stream (events never change).
        let items: (BufferedEvent | null)[] | null = null;
        for (const f of set) {
          if (f.ended || f.cursor < start || last <= f.cursor) continue;
          f.cursor = last;
          f.heardAt = now;
          if (fields[0] === 'end') {
            f.end();
            continue;
          }
          items ??= parseEntry(last, fields);
          for (const item of items) if (item && Number(item.id) > f.delivered) f.push(item);
          f.notify();
        }
      }
    }
  }

  /**
   * Checks the streams of followers that heard nothing for `checkMs`: one script call, not
   * awaited by the loop, one at a time.
   */
  private checkQuiet(reading: Follower[]): void {
    if (this.checking) return;
    const now = Date.now();
    const due = reading.filter((f) => !f.ended && f.pending === 0 && now - f.heardAt >= this.options.checkMs);
    if (due.length === 0) return;
    this.checking = true;
    const args: (string | number)[] = [due.length * 3];
    for (const f of due) args.push(f.keys.owner, f.keys.producer, f.keys.events);
    args.push(this.options.alivePrefix);
    for (const f of due) args.push(f.cursor);
    (this.options.redis as unknown as LivenessScript)
      .keyrackStreamLiveness(...args)
      .then(
        (states) => {
          const at = Date.now();
          due.forEach((f, i) => {
            if (f.ended) return;
            f.heardAt = at;
            const state = states[i];
            if (state === GONE) f.end();
            else if (state === PRODUCER_GONE) {
              f.push({ id: String(Math.max(f.cursor, f.delivered) + 1), event: INTERRUPTED });
              f.end();
            }
          });
        },
        // Redis unreachable: the blocking read fails its followers itself.
        () => undefined,
      )
      .finally(() => (this.checking = false));
  }
}

/** An events entry (field `b`: a JSON array; `e`: one event, as earlier versions wrote) whose last event has seq `last`. */
function parseEntry(last: number, fields: string[]): (BufferedEvent | null)[] {
  const events = fields[0] === 'b' ? (JSON.parse(fields[1] ?? '[]') as unknown[]) : [JSON.parse(fields[1] ?? 'null') as unknown];
  return events.map((raw, i) => {
    const parsed = streamEventSchema.safeParse(raw);
    return parsed.success ? { id: String(last - events.length + 1 + i), event: parsed.data } : null;
  });
}

/** One XREAD's STREAMS arguments: each stream once, from the furthest-behind follower's cursor. */
function readArgs(followers: Follower[]): { keys: string[]; ids: string[]; from: Map<string, number> } {
  const from = new Map<string, number>();
  for (const f of followers) {
    const at = from.get(f.keys.events);
    if (at === undefined || f.cursor < at) from.set(f.keys.events, f.cursor);
  }
  const keys: string[] = [];
  const ids: string[] = [];
  for (const [key, cursor] of from) {
    keys.push(key);
    ids.push(`0-${cursor}`);
  }
  return { keys, ids, from };
}

const GONE = 0;
const PRODUCER_GONE = 2;

/**
 * Per stream (KEYS: owner, producer, events; ARGV: the liveness key prefix, then each
 * stream's cursor): 0 when the copy expired (no owner key), 2 when its producer is gone (its
 * liveness key expired) and nothing past the cursor is there to read (no end entry, no events
 * the reader has not seen), 1 otherwise. A stream written by a version without a producer key
 * counts as live: it ends when its copy expires, as it did.
 */
const LIVENESS = `
local out = {}
local n = #KEYS / 3
for i = 1, n do
  local owner, producer, events = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local state = 1
  if redis.call('EXISTS', owner) == 0 then
    state = 0
  else
    local id = redis.call('GET', producer)
    if id and redis.call('EXISTS', ARGV[1] .. id) == 0 then
      local last = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)[1]
      if not last or tonumber(string.sub(last[1], 3)) <= tonumber(ARGV[1 + i]) then state = 2 end
    end
  end
  out[i] = state
end
return out
`;

interface LivenessScript {
  keyrackStreamLiveness(...args: (string | number)[]): Promise<number[]>;
}
