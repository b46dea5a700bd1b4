import { Redis, type RedisOptions } from 'ioredis';
import type { Socket } from 'node:net';
import type { Logger } from '../observability/logger';

/**
 * Connection settings for a gateway that must keep serving while Redis is away:
 * commands fail fast instead of queueing (a request never hangs on a dead Redis), and the
 * client keeps reconnecting in the background forever, so recovery needs no restart.
 */
export interface GatewayRedisOptions {
  /** Longest wait for one command before it fails and the caller falls back. Default 1 000 ms. */
  commandTimeoutMs?: number;
  /** Cap of the reconnect back-off. Default 2 000 ms. */
  maxReconnectDelayMs?: number;
  /**
   * Queue commands while disconnected. False (the default) for the data connection; a
   * subscriber connection passes true so its SUBSCRIBE waits for the first connect.
   */
  offlineQueue?: boolean;
  /**
   * Commands sent in one turn of the event loop go out in one socket write (CoalescingRedis).
   * Default: no.
   */
  coalesceWrites?: boolean;
  /** Names the connection in log lines: `pool`, `subscriber`, ... */
  role?: string;
  logger?: Logger;
  /** ioredis options over the ones above (the data connections' own retry rules). */
  redisOptions?: RedisOptions;
}

export function gatewayRedisOptions(options: GatewayRedisOptions = {}): RedisOptions {
  const maxDelay = options.maxReconnectDelayMs ?? 2_000;
  return {
    enableOfflineQueue: options.offlineQueue ?? false,
    // One retry on a dropped connection, then the error reaches the caller (who falls back).
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 1_000,
    connectTimeout: 2_000,
    enableReadyCheck: true,
    // Always a number: ioredis never gives up, so a Redis that comes back is used again.
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), maxDelay),
  };
}

/**
 * A Redis connection configured by gatewayRedisOptions. Connection errors are logged once per
 * outage (not once per retry) and never thrown: an unhandled 'error' event would crash nothing
 * but spams stderr.
 */
export function createGatewayRedis(url: string, options: GatewayRedisOptions = {}): Redis {
  const Client = options.coalesceWrites ? CoalescingRedis : Redis;
  const redis = new Client(url, { ...gatewayRedisOptions(options), ...options.redisOptions });
  const role = options.role ?? 'redis';
  let down = false;
  redis.on('error', (error: Error) => {
    if (down) return;
    down = true;
    // The URL may carry a password: log the error class and code only.
    options.logger?.warn({ role, error: { name: error.name, code: (error as { code?: string }).code } }, 'redis connection error; reconnecting in the background');
  });
  redis.on('ready', () => {
    if (down) options.logger?.info({ role }, 'redis connection back');
    down = false;
  });
  return redis;
}

/**
 * A connection whose commands sent in one turn of the event loop leave in one socket write:
 * the first corks the socket and a setImmediate uncorks it, after the poll phase's other I/O
 * callbacks (other requests) have added theirs. This is what ioredis's enableAutoPipelining is
 * for, without its cost: that allocates a Pipeline (a Commander with its own command table)
 * per batch, and at a steady few hundred requests a second every request is its own batch;
 * those objects were about a quarter of what outlived the gateway's scavenges (issue #8,
 * BENCHMARKS.md). Replies, timeouts and the offline queue are ioredis's own, unchanged: only
 * when bytes reach the socket moves, never their order.
 */
export class CoalescingRedis extends Redis {
  private corked: Socket | null = null;
  private readonly uncork = (): void => {
    const socket = this.corked;
    this.corked = null;
    socket?.uncork();
  };

  override sendCommand(...args: Parameters<Redis['sendCommand']>): ReturnType<Redis['sendCommand']> {
    // Only writes to the connection's own socket (a command given a stream is a pipeline's).
    if (this.corked === null && args[1] === undefined && this.status === 'ready') {
      const socket = this.stream as Socket | undefined;
      if (socket?.writable) {
        socket.cork();
        this.corked = socket;
        setImmediate(this.uncork);
      }
    }
    return super.sendCommand(...args);
  }
}
