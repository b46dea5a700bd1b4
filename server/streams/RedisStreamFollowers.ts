import { duplicateClient, type RedisClient } from '../ops/redisClient';
import { streamEventSchema, type StreamEvent } from '../../shared';
import type { StreamKeys } from './streamKeys';
import type { BufferedEvent } from './types';

export type { StreamKeys } from './streamKeys';

export interface RedisStreamFollowersOptions {
  /** The buffer's own connection: first reads and liveness checks (never blocking). */
  redis: RedisClient;
  /** Producers' liveness keys are this plus their instance id (RedisStreamBuffer's heartbeat). */
  alivePrefix: string;
  /**
   * A Redis Cluster (issue 22): one blocking read per stream bucket (streamKeys.ts), each on its
   * own connection, since one XREAD may only name keys of one slot. Default false: one for all.
   */
  cluster?: boolean;
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
 * The followers read by one blocking XREAD, on one connection of its own: every follower on a
 * single node; those of one stream bucket (one slot) on a cluster.
 */
class Lane {
  readonly followers = new Set<Follower>();
  reader: RedisClient | null = null;
  looping = false;
  wakeLoop: (() => void) | null = null;
  checking = false;
}

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
  private readonly lanes = new Map<number, Lane>();
  private readonly byKey = new Map<string, Set<Follower>>();
  private joining: Follower[] = [];
  private closed = false;
  private count = 0;

  constructor(private readonly options: RedisStreamFollowersOptions) {
    options.redis.defineCommand('keyrackStreamLiveness', { lua: LIVENESS });
  }

  private laneOf(follower: Follower): Lane {
    const id = this.options.cluster ? follower.keys.bucket : 0;
    let lane = this.lanes.get(id);
    if (!lane) this.lanes.set(id, (lane = new Lane()));
    return lane;
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
          if (wasFull && follower.reading) this.wake(this.laneOf(follower));
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
    return this.count;
  }

  close(): void {
    this.closed = true;
    for (const lane of this.lanes.values()) {
      for (const follower of lane.followers) follower.end(new Error('stream buffer closed'));
      lane.reader?.disconnect();
      lane.reader = null;
      this.wake(lane);
    }
  }

  private add(follower: Follower): void {
    const lane = this.laneOf(follower);
    if (!lane.followers.has(follower)) this.count += 1;
    lane.followers.add(follower);
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
    if (this.laneOf(follower).followers.delete(follower)) this.count -= 1;
    const set = this.byKey.get(follower.keys.events);
    set?.delete(follower);
    if (set?.size === 0) this.byKey.delete(follower.keys.events);
    follower.ended = true;
  }

  /** The first read of every follower added this turn: one non-blocking XREAD (per lane on a cluster). */
  private join(): void {
    const all = this.joining.filter((f) => !f.ended);
    this.joining = [];
    const byLane = new Map<Lane, Follower[]>();
    for (const f of all) {
      const lane = this.laneOf(f);
      const batch = byLane.get(lane);
      if (batch) batch.push(f);
      else byLane.set(lane, [f]);
    }
    for (const [lane, batch] of byLane) {
      const { keys, ids, from } = readArgs(batch);
      void (this.options.redis.xread('COUNT', ENTRIES_PER_READ, 'STREAMS', ...keys, ...ids) as Promise<XReadReply>).then(
        (reply) => {
          this.deliver(reply, from);
          for (const f of batch) f.joined = true;
          this.wake(lane);
        },
        (error: unknown) => {
          for (const f of batch) f.end(error);
        },
      );
    }
  }

  private wake(lane: Lane): void {
    if (!lane.looping) {
      void this.loop(lane);
      return;
    }
    const wake = lane.wakeLoop;
    lane.wakeLoop = null;
    wake?.();
  }

  private async loop(lane: Lane): Promise<void> {
    lane.looping = true;
    try {
      while (!this.closed && lane.followers.size > 0) {
        const reading: Follower[] = [];
        for (const f of lane.followers) if (f.reading) reading.push(f);
        if (reading.length === 0) {
          // Every follower is joining or full: wait for one to be ready.
          await new Promise<void>((resolve) => (lane.wakeLoop = resolve));
          continue;
        }
        const { keys, ids, from } = readArgs(reading);
        let reply: XReadReply;
        try {
          reply = (await this.connection(lane).xread('COUNT', ENTRIES_PER_READ, 'BLOCK', this.options.blockMs, 'STREAMS', ...keys, ...ids)) as XReadReply;
        } catch (error) {
          if (this.closed) return;
          // The readers of the streams read hear of it (as each did on its own connection);
          // the others, and readers that come later, read again.
          for (const f of reading) f.end(error);
          continue;
        }
        this.deliver(reply, from);
        this.checkQuiet(lane, reading);
      }
    } finally {
      lane.looping = false;
      if (lane.followers.size === 0 && this.options.cluster) {
        // A bucket nobody follows any more keeps no connection (one per followed bucket at most).
        lane.reader?.disconnect();
        lane.reader = null;
      }
    }
  }

  private connection(lane: Lane): RedisClient {
    if (!lane.reader) {
      // A blocking XREAD holds the connection it runs on: this one is for the loop alone.
      lane.reader = duplicateClient(this.options.redis);
      lane.reader.on('error', () => {});
    }
    return lane.reader;
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
  private checkQuiet(lane: Lane, reading: Follower[]): void {
    if (lane.checking) return;
    const now = Date.now();
    const due = reading.filter((f) => !f.ended && f.pending === 0 && now - f.heardAt >= this.options.checkMs);
    if (due.length === 0) return;
    lane.checking = true;
    void this.checkStreams(due).finally(() => (lane.checking = false));
  }

  /**
   * Two steps, so that each command stays in one slot on a cluster (issue 22): the script over
   * the streams (one lane: one bucket), then EXISTS of the liveness key of each producer the
   * script named (single keys, one per producer instance, not per stream).
   */
  private async checkStreams(due: Follower[]): Promise<void> {
    const args: (string | number)[] = [due.length * 3];
    for (const f of due) args.push(f.keys.owner, f.keys.producer, f.keys.events);
    for (const f of due) args.push(f.cursor);
    let states: (number | string)[];
    const alive = new Map<string, Promise<boolean>>();
    try {
      states = await (this.options.redis as unknown as LivenessScript).keyrackStreamLiveness(...args);
      for (const state of states) {
        if (typeof state === 'string' && !alive.has(state)) alive.set(state, this.options.redis.exists(this.options.alivePrefix + state).then((n) => n > 0));
      }
      await Promise.all(alive.values());
    } catch {
      // Redis unreachable: the blocking read fails its followers itself.
      return;
    }
    const at = Date.now();
    for (let i = 0; i < due.length; i += 1) {
      const f = due[i]!;
      if (f.ended) continue;
      f.heardAt = at;
      const state = states[i];
      if (state === GONE) f.end();
      else if (typeof state === 'string' && !(await alive.get(state))) {
        f.push({ id: String(Math.max(f.cursor, f.delivered) + 1), event: INTERRUPTED });
        f.end();
      }
    }
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

/**
 * Per stream (KEYS: owner, producer, events; ARGV: each stream's cursor): 0 when the copy
 * expired (no owner key); its producer's instance id when nothing past the cursor is there to
 * read (no end entry, no events the reader has not seen), so the caller checks that producer's
 * liveness key (another slot on a cluster); 1 otherwise. A stream written by a version without
 * a producer key counts as live: it ends when its copy expires, as it did.
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
    if id then
      local last = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)[1]
      if not last or tonumber(string.sub(last[1], 3)) <= tonumber(ARGV[i]) then state = id end
    end
  end
  out[i] = state
end
return out
`;

interface LivenessScript {
  keyrackStreamLiveness(...args: (string | number)[]): Promise<(number | string)[]>;
}
