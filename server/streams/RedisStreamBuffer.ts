import type { Redis } from 'ioredis';
import { streamEventSchema } from '../../shared';
import type { BufferedEvent, DurableStreamBuffer } from './types';

export interface RedisStreamBufferOptions {
  redis: Redis;
  prefix?: string;
  /** Every write renews it; a stream untouched this long is gone. Default 5 minutes. */
  ttlMs?: number;
  /** How long one blocking read waits before checking that the stream still exists. Default 2 s. */
  blockMs?: number;
}

/**
 * Chat streams in Redis: one Redis Stream per chat stream with explicit ids `0-<seq>`, so
 * "resume after event N" is `XREAD ... 0-N`. The end is an entry with an `end` field.
 * Readers block on their own connection (a blocking XREAD holds the connection it runs on).
 */
export class RedisStreamBuffer implements DurableStreamBuffer {
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly blockMs: number;
  private readonly readers = new Set<Redis>();

  constructor(private readonly options: RedisStreamBufferOptions) {
    this.prefix = options.prefix ?? 'keyrack';
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.blockMs = options.blockMs ?? 2_000;
  }

  private keys(streamId: string) {
    const base = `${this.prefix}:{chat:${streamId}}`;
    return { owner: `${base}:owner`, events: `${base}:events` };
  }

  async create(streamId: string, owner: string): Promise<void> {
    await this.options.redis.set(this.keys(streamId).owner, owner, 'PX', this.ttlMs);
  }

  async append(streamId: string, seq: number, event: unknown): Promise<void> {
    const k = this.keys(streamId);
    await this.options.redis
      .multi()
      .xadd(k.events, `0-${seq}`, 'e', JSON.stringify(event))
      .pexpire(k.events, this.ttlMs)
      .pexpire(k.owner, this.ttlMs)
      .exec();
  }

  async finish(streamId: string, seq: number): Promise<void> {
    const k = this.keys(streamId);
    await this.options.redis
      .multi()
      .xadd(k.events, `0-${seq + 1}`, 'end', '1')
      .pexpire(k.events, this.ttlMs)
      .pexpire(k.owner, this.ttlMs)
      .exec();
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
            const parsed = streamEventSchema.safeParse(JSON.parse(fields[1] ?? 'null'));
            if (!parsed.success) continue;
            yield { id: id.slice(2), event: parsed.data };
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
    for (const reader of this.readers) reader.disconnect();
    this.readers.clear();
  }
}
