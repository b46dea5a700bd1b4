import { afterAll, describe, expect, it, vi } from 'vitest';
import type { StreamEvent } from '../../shared';
import { silentLogger } from '../../server/observability/logger';
import { pushEach, type ChatEngine, type ChatEngineRequest, type EventSink } from '../../server/streams/ChatEngine';
import { ChatStreams, StreamLimitError } from '../../server/streams/ChatStreams';
import { RedisStreamBuffer } from '../../server/streams/RedisStreamBuffer';
import type { BufferedEvent } from '../../server/streams/types';
import { forEachRedisTopology } from '../support/redisTopologies';

const chat = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hi' }] };

/** An engine the test drives: each call waits for `release()` between events and records aborts. */
class ScriptedEngine implements ChatEngine {
  calls = 0;
  aborted: Promise<void>;
  private onAbort!: () => void;
  private gates: (() => void)[] = [];
  private waiting: (() => void)[] = [];

  constructor(private readonly script: StreamEvent[], private readonly gated = false) {
    this.aborted = new Promise((resolve) => (this.onAbort = resolve));
  }

  /** Lets the engine emit its next event. */
  release(): void {
    const gate = this.gates.shift();
    if (gate) gate();
    else this.waiting.push(() => {});
  }

  run(req: ChatEngineRequest, emit: EventSink): Promise<void> {
    return pushEach(this.stream(req), emit);
  }

  private async *stream(req: ChatEngineRequest): AsyncGenerator<StreamEvent> {
    this.calls += 1;
    req.signal.addEventListener('abort', () => this.onAbort(), { once: true });
    for (const [i, event] of this.script.entries()) {
      if (this.gated && i > 0) {
        if (this.waiting.length > 0) this.waiting.shift();
        else await new Promise<void>((resolve) => this.gates.push(resolve));
      }
      if (req.signal.aborted) {
        yield { type: 'done', finishReason: 'aborted' };
        return;
      }
      yield event;
    }
  }
}

const SCRIPT: StreamEvent[] = [
  { type: 'start', provider: 'openai', model: 'gpt-4o', keyFingerprint: 'f1' },
  { type: 'delta', text: 'Hel' },
  { type: 'delta', text: 'lo' },
  { type: 'usage', usage: { inputTokens: 3, outputTokens: 2, cachedInputTokens: 0, reasoningTokens: 0 } },
  { type: 'done', finishReason: 'stop' },
];

async function collect(gen: AsyncGenerator<BufferedEvent>, max = Infinity): Promise<BufferedEvent[]> {
  const out: BufferedEvent[] = [];
  for await (const e of gen) {
    out.push(e);
    if (out.length >= max) break;
  }
  return out;
}

describe('ChatStreams (in process)', () => {
  it('answers start with the first event and replays every event with ids 1..n', async () => {
    const engine = new ScriptedEngine(SCRIPT);
    const streams = new ChatStreams({ engine, logger: silentLogger });
    const started = await streams.start({ chat, userId: 'alice' });
    expect(started.first).toEqual(SCRIPT[0]);
    expect(started.events).toEqual([]); // none asked for
    const read = await streams.open({ streamId: started.streamId, userId: 'alice' });
    const events = await collect(read!(new AbortController().signal));
    expect(events).toEqual(SCRIPT.map((event, i) => ({ id: String(i + 1), event })));
  });

  it('answers start with the events it holds, up to maxEvents, ids from 1', async () => {
    const streams = new ChatStreams({ engine: new ScriptedEngine(SCRIPT), logger: silentLogger });
    const all = await streams.start({ chat, userId: 'alice', maxEvents: 64 });
    expect(all.events.length).toBeGreaterThanOrEqual(1);
    expect(all.events).toEqual(SCRIPT.slice(0, all.events.length).map((event, i) => ({ id: String(i + 1), event })));
    const capped = await streams.start({ chat, userId: 'alice', maxEvents: 1 });
    expect(capped.events).toEqual([{ id: '1', event: SCRIPT[0] }]);
  });

  it('resumes after lastEventId without a second engine call', async () => {
    const engine = new ScriptedEngine(SCRIPT);
    const streams = new ChatStreams({ engine, logger: silentLogger });
    const { streamId } = await streams.start({ chat, userId: 'alice' });
    const read = await streams.open({ streamId, userId: 'alice', lastEventId: '2' });
    const events = await collect(read!(new AbortController().signal));
    expect(events.map((e) => e.id)).toEqual(['3', '4', '5']);
    expect(engine.calls).toBe(1);
  });

  it('follow pushes events as they come, pauses while the sink is full, and aborts upstream when the follower leaves', async () => {
    const engine = new ScriptedEngine(SCRIPT, true);
    const streams = new ChatStreams({ engine, logger: silentLogger, detachGraceMs: 0 });
    const { streamId } = await streams.start({ chat, userId: 'alice' });
    expect(streams.follow({ streamId, userId: 'mallory' }, { write: () => true, end: () => {} }, new AbortController().signal)).toBeNull();
    const got: string[] = [];
    let full = false;
    let ended = false;
    const leave = new AbortController();
    const follower = streams.follow(
      { streamId, userId: 'alice' },
      {
        write: (id) => {
          got.push(id);
          return !full;
        },
        end: () => (ended = true),
      },
      leave.signal,
    )!;
    follower.start();
    expect(got).toEqual(['1']);
    full = true;
    engine.release();
    engine.release();
    await new Promise<void>((resolve) => setImmediate(resolve));
    // Event 2 was taken (write returned false after taking it); 3 waits for resume.
    expect(got).toEqual(['1', '2']);
    full = false;
    follower.resume();
    expect(got).toEqual(['1', '2', '3']);
    expect(ended).toBe(false);
    leave.abort(); // the only subscriber left: upstream is aborted after the (zero) grace
    await engine.aborted;
  });

  it('follow from lastEventId on a finished stream writes the rest and ends', async () => {
    const streams = new ChatStreams({ engine: new ScriptedEngine(SCRIPT), logger: silentLogger });
    const { streamId } = await streams.start({ chat, userId: 'alice' });
    await collect((await streams.open({ streamId, userId: 'alice' }))!(new AbortController().signal));
    const got: string[] = [];
    let ended = false;
    streams.follow({ streamId, userId: 'alice', lastEventId: '3' }, { write: (id) => (got.push(id), true), end: () => (ended = true) }, new AbortController().signal)!.start();
    expect(got).toEqual(['4', '5']);
    expect(ended).toBe(true);
  });

  it("hides another user's stream and unknown ids alike", async () => {
    const streams = new ChatStreams({ engine: new ScriptedEngine(SCRIPT), logger: silentLogger });
    const { streamId } = await streams.start({ chat, userId: 'alice' });
    expect(await streams.open({ streamId, userId: 'mallory' })).toBeNull();
    expect(await streams.open({ streamId: crypto.randomUUID(), userId: 'alice' })).toBeNull();
  });

  it('aborts the upstream call once the last subscriber leaves (after the grace)', async () => {
    const engine = new ScriptedEngine(SCRIPT, true);
    const streams = new ChatStreams({ engine, logger: silentLogger, detachGraceMs: 0 });
    const { streamId } = await streams.start({ chat, userId: 'alice' });
    const read = (await streams.open({ streamId, userId: 'alice' }))!;
    const first = new AbortController();
    const second = new AbortController();
    const a = read(first.signal);
    const b = read(second.signal);
    expect((await a.next()).value?.id).toBe('1');
    expect((await b.next()).value?.id).toBe('1');
    await a.return(undefined); // one subscriber left: upstream goes on
    engine.release();
    expect((await b.next()).value?.event).toEqual({ type: 'delta', text: 'Hel' });
    await b.return(undefined); // none left
    await engine.aborted;
    // The stream ends with the dispatcher's `done: aborted`, buffered for a late resume.
    engine.release();
    const rest = await collect((await streams.open({ streamId, userId: 'alice', lastEventId: '2' }))!(new AbortController().signal));
    expect(rest.at(-1)?.event).toEqual({ type: 'done', finishReason: 'aborted' });
  });

  it('a subscriber attaching within the grace keeps the upstream call', async () => {
    const engine = new ScriptedEngine(SCRIPT, true);
    const streams = new ChatStreams({ engine, logger: silentLogger, detachGraceMs: 60_000 });
    const { streamId } = await streams.start({ chat, userId: 'alice' });
    const read = (await streams.open({ streamId, userId: 'alice' }))!;
    const a = read(new AbortController().signal);
    await a.next();
    await a.return(undefined);
    const b = read(new AbortController().signal);
    for (let i = 0; i < 4; i += 1) engine.release();
    const events = await collect(b);
    expect(events.map((e) => e.event.type)).toEqual(['start', 'delta', 'delta', 'usage', 'done']);
    expect(engine.calls).toBe(1);
  });
});

forEachRedisTopology((topology) => {
  describe('ChatStreams with the Redis buffer (another instance resumes)', () => {
    const redis = topology.connect();
    const prefix = `test-streams-${process.pid}-${Date.now()}`;
    afterAll(() => redis.quit());

    it('an instance that did not run the stream reads it from Redis, owner-checked, after lastEventId', async () => {
      const engine = new ScriptedEngine(SCRIPT);
      const producer = new ChatStreams({ engine, logger: silentLogger, durable: new RedisStreamBuffer({ redis, prefix }) });
      const other = new ChatStreams({ engine: new ScriptedEngine([]), logger: silentLogger, durable: new RedisStreamBuffer({ redis, prefix, blockMs: 200 }) });
      const { streamId } = await producer.start({ chat, userId: 'alice' });
      // Wait until the producer has finished (its local copy ends), so every write was queued.
      await collect((await producer.open({ streamId, userId: 'alice' }))!(new AbortController().signal));

      expect(await other.open({ streamId, userId: 'mallory' })).toBeNull();
      const read = await other.open({ streamId, userId: 'alice', lastEventId: '1' });
      expect(read).not.toBeNull();
      const events = await collect(read!(new AbortController().signal));
      expect(events).toEqual(SCRIPT.slice(1).map((event, i) => ({ id: String(i + 2), event })));
      expect(engine.calls).toBe(1);
    });

    it('keeps in memory only what a local reader still needs; older events resume from Redis on the same instance', async () => {
      const script: StreamEvent[] = [SCRIPT[0]!, ...Array.from({ length: 40 }, (_, i) => ({ type: 'delta' as const, text: `t${i} ` })), SCRIPT[3]!, SCRIPT[4]!];
      const engine = new ScriptedEngine(script, true);
      const streams = new ChatStreams({ engine, logger: silentLogger, durable: new RedisStreamBuffer({ redis, prefix, flushIntervalMs: 0, blockMs: 200 }), detachGraceMs: 60_000 });
      const { streamId } = await streams.start({ chat, userId: 'alice' });
      const got: string[] = [];
      const ended = new Promise<void>((resolve) => {
        streams.follow({ streamId, userId: 'alice' }, { write: (id) => (got.push(id), true), end: resolve }, new AbortController().signal)!.start();
      });
      // The follower writes each event as it comes; every written event reaches Redis soon after.
      for (let i = 1; i < script.length; i += 1) {
        engine.release();
        await vi.waitFor(() => expect(got).toHaveLength(i + 1), { interval: 1 });
        if (i === 30) {
          // By now the early events are in Redis and written by the only reader: gone from memory.
          await vi.waitFor(() => expect(streams.follow({ streamId, userId: 'alice', lastEventId: '2' }, { write: () => true, end: () => {} }, AbortSignal.abort())).toBeNull(), { interval: 5 });
        }
      }
      await ended;
      expect(got).toEqual(script.map((_, i) => String(i + 1)));
      // A reconnect from event 2 on this instance is served from the durable copy, whole.
      const read = await streams.open({ streamId, userId: 'alice', lastEventId: '2' });
      const events = await collect(read!(new AbortController().signal));
      expect(events).toEqual(script.slice(2).map((event, i) => ({ id: String(i + 3), event })));
      expect(engine.calls).toBe(1);
    });

    it('without a reader nothing leaves memory: a reconnect after chat.start is served locally', async () => {
      const script: StreamEvent[] = [SCRIPT[0]!, ...Array.from({ length: 40 }, (_, i) => ({ type: 'delta' as const, text: `t${i} ` })), SCRIPT[4]!];
      const buffer = new RedisStreamBuffer({ redis, prefix, flushIntervalMs: 0, blockMs: 200 });
      const streams = new ChatStreams({ engine: new ScriptedEngine(script), logger: silentLogger, durable: buffer });
      const { streamId } = await streams.start({ chat, userId: 'alice' });
      // Redis has the whole stream (its end entry included) before anyone reads it here.
      expect(await collect(buffer.read(streamId, 0, new AbortController().signal))).toHaveLength(script.length);
      const got: string[] = [];
      streams.follow({ streamId, userId: 'alice' }, { write: (id) => (got.push(id), true), end: () => {} }, new AbortController().signal)!.start();
      expect(got).toEqual(script.map((_, i) => String(i + 1)));
    });

    it('issue 24.7: a user holds at most maxStreamsPerUser subscriptions per instance, local and from Redis alike; one ending frees a place', async () => {
      const engine = new ScriptedEngine(SCRIPT, true);
      const producer = new ChatStreams({ engine, logger: silentLogger, durable: new RedisStreamBuffer({ redis, prefix }), detachGraceMs: 60_000 });
      const reader = new ChatStreams({ engine: new ScriptedEngine(SCRIPT, true), logger: silentLogger, durable: new RedisStreamBuffer({ redis, prefix, blockMs: 50 }), maxStreamsPerUser: 3, detachGraceMs: 60_000 });
      const remote = (await producer.start({ chat, userId: 'alice' })).streamId;
      const local = (await reader.start({ chat, userId: 'alice' })).streamId;
      const first = new AbortController();
      const readFirst = (await reader.open({ streamId: remote, userId: 'alice' }))!(first.signal);
      expect((await readFirst.next()).value).toMatchObject({ id: '1' });
      const second = (await reader.open({ streamId: remote, userId: 'alice' }))!(new AbortController().signal);
      reader.follow({ streamId: local, userId: 'alice' }, { write: () => true, end: () => {} }, new AbortController().signal)!.start();
      expect(reader.subscriptionsOf('alice')).toBe(3);
      // The fourth, whichever way it comes, is refused; another user is not affected.
      await expect(reader.open({ streamId: remote, userId: 'alice' })).rejects.toBeInstanceOf(StreamLimitError);
      await expect(reader.open({ streamId: local, userId: 'alice' })).rejects.toBeInstanceOf(StreamLimitError);
      expect(() => reader.follow({ streamId: local, userId: 'alice' }, { write: () => true, end: () => {} }, new AbortController().signal)).toThrow(StreamLimitError);
      expect(await reader.open({ streamId: remote, userId: 'bob' })).toBeNull();
      // One ends (its client left): the next is let in.
      first.abort();
      await readFirst.next();
      expect(reader.subscriptionsOf('alice')).toBe(2);
      const fourth = await reader.open({ streamId: remote, userId: 'alice', lastEventId: '1' });
      expect(fourth).not.toBeNull();
      void second.return(undefined);
      producer.close();
      reader.close();
    });

    it('a Redis reader follows a live stream and stops when its signal aborts', async () => {
      const engine = new ScriptedEngine(SCRIPT, true);
      const buffer = new RedisStreamBuffer({ redis, prefix, blockMs: 200 });
      const producer = new ChatStreams({ engine, logger: silentLogger, durable: buffer, detachGraceMs: 60_000 });
      const { streamId } = await producer.start({ chat, userId: 'alice' });
      const ac = new AbortController();
      const reader = buffer.read(streamId, 0, ac.signal);
      expect((await reader.next()).value).toEqual({ id: '1', event: SCRIPT[0] });
      engine.release();
      expect((await reader.next()).value).toEqual({ id: '2', event: SCRIPT[1] });
      const pending = reader.next();
      ac.abort();
      expect((await pending).done).toBe(true);
      producer.close();
    });
  });
});
