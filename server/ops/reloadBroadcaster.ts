import { randomUUID } from 'node:crypto';
import type { RedisClient } from './redisClient';
import { z } from 'zod';
import type { Logger } from '../observability/logger';

/**
 * One instance told to reload tells every instance sharing its Redis, so a leaked key leaves
 * rotation everywhere at once (issue #7). Each instance re-reads its own environment file; the
 * message carries no configuration, only who asked.
 */
export interface ReloadBroadcasterOptions {
  /** A dedicated connection: a subscribed ioredis client can do nothing else. */
  subscriber: RedisClient;
  /** Any ordinary connection, for PUBLISH. */
  publisher: RedisClient;
  prefix?: string;
  /** Messages from this id are ignored: the sender has already reloaded. Default: random. */
  instanceId?: string;
  /** What a message triggers: EnvReloader.reload. */
  reload: () => Promise<unknown>;
  logger?: Logger;
}

export interface ReloadBroadcaster {
  readonly channel: string;
  /**
   * Subscribe; resolves once Redis confirmed, never rejects. With the subscriber's offline queue
   * on, a Redis that is down delays this until it connects: do not block start-up on it.
   * ioredis re-subscribes after every reconnect.
   */
  start(): Promise<void>;
  /** Tell the other instances; false when Redis could not be reached (this instance's reload still stands). */
  announce(): Promise<boolean>;
  close(): Promise<void>;
}

const messageSchema = z.object({ from: z.string().min(1).max(200), at: z.number() });

export function createReloadBroadcaster(options: ReloadBroadcasterOptions): ReloadBroadcaster {
  const { subscriber, publisher, logger } = options;
  const channel = `${options.prefix ?? 'keyrack'}:reload`;
  const instanceId = options.instanceId ?? randomUUID();

  const onMessage = (from: string, text: string) => {
    if (from !== channel) return;
    let message: z.infer<typeof messageSchema>;
    try {
      message = messageSchema.parse(JSON.parse(text));
    } catch {
      logger?.warn({ channel }, 'ignored a malformed reload message');
      return;
    }
    if (message.from === instanceId) return;
    logger?.info({ from: message.from }, 'reload requested by another instance');
    options.reload().catch((error: unknown) => logger?.error({ err: { name: (error as Error).name } }, 'reload requested by another instance failed'));
  };

  return {
    channel,
    async start() {
      subscriber.on('message', onMessage);
      try {
        await subscriber.subscribe(channel);
      } catch (error) {
        logger?.warn({ err: { name: (error as Error).name } }, 'reload channel subscription failed; this instance reloads only when told directly');
      }
    },
    async announce() {
      try {
        await publisher.publish(channel, JSON.stringify({ from: instanceId, at: Date.now() }));
        return true;
      } catch (error) {
        logger?.warn({ err: { name: (error as Error).name } }, 'could not tell other instances to reload (Redis unreachable)');
        return false;
      }
    },
    async close() {
      subscriber.off('message', onMessage);
      try {
        await subscriber.unsubscribe(channel);
      } catch {
        // Redis away: nothing to unsubscribe from.
      }
    },
  };
}
