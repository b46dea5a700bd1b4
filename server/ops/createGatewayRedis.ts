import { Redis, type RedisOptions } from 'ioredis';
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
  /** Commands issued in one tick go out in one write (ioredis auto-pipelining). Default: no. */
  autoPipelining?: boolean;
  /** Names the connection in log lines: `pool`, `subscriber`, ... */
  role?: string;
  logger?: Logger;
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
    enableAutoPipelining: options.autoPipelining ?? false,
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
  const redis = new Redis(url, gatewayRedisOptions(options));
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
