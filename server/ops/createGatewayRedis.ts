import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Socket } from 'node:net';
import type { Logger } from '../observability/logger';
import { clusterOptionsFrom, parseRedisTarget, setDuplicateDefaults, type RedisClient } from './redisClient';
import { StoreUnavailableError } from './storeFailure';

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
  /**
   * A Redis that stalls (stopped, swapping: the connection stays open and nothing answers) is
   * detected by the first command that times out; from then on every command fails at once with
   * a StoreUnavailableError, so callers fall back in microseconds instead of each waiting out its
   * own timeout, until a ping (every `probeMs`, default 250 ms) is answered again. Default: off
   * (the pool connection has the resilient store's own detection).
   */
  failFastWhenStalled?: boolean | { probeMs?: number };
  /**
   * Command timeout of this connection's duplicate() connections, which carry blocking reads
   * (XREAD BLOCK) and SUBSCRIBE and so must not inherit a short request-path timeout. Default:
   * the connection's own.
   */
  duplicateCommandTimeoutMs?: number;
  /**
   * The URL names one seed node of a Redis Cluster (REDIS_CLUSTER=1). A `redis+cluster://` URL
   * is a cluster without it. Default false.
   */
  cluster?: boolean;
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
export function createGatewayRedis(url: string, options: GatewayRedisOptions = {}): RedisClient {
  const guarded = options.failFastWhenStalled !== undefined && options.failFastWhenStalled !== false;
  const role = options.role ?? 'redis';
  const stall = typeof options.failFastWhenStalled === 'object' ? options.failFastWhenStalled : {};
  const stallSettings = { probeMs: stall.probeMs ?? 250, role, ...(options.logger ? { logger: options.logger } : {}) };
  const target = parseRedisTarget(url, options.cluster);
  let redis: RedisClient;
  if (target.kind === 'cluster') {
    // Issue 22. A Cluster writes to one socket per node, each a plain Redis that ioredis makes:
    // coalescing corks each node's socket for the turn as it joins (coalesceNodeWrites). The
    // stall guard covers the cluster as a whole: one command timing out on any node makes
    // every command fail fast until a ping (to any node) is answered.
    const clusterOptions = clusterOptionsFrom({ ...gatewayRedisOptions(options), ...options.redisOptions, ...target.redisOptions });
    const cluster = guarded ? new StallGuardedCluster(target.nodes, clusterOptions) : new Cluster(target.nodes, clusterOptions);
    if (options.coalesceWrites) cluster.on('+node', (node: Redis) => coalesceNodeWrites(node));
    if (cluster instanceof StallGuardedCluster) cluster.configureStallGuard(stallSettings);
    if (options.duplicateCommandTimeoutMs !== undefined) setDuplicateDefaults(cluster, { commandTimeout: options.duplicateCommandTimeoutMs });
    redis = cluster;
  } else {
    const Client = options.coalesceWrites ? (guarded ? StallGuardedCoalescingRedis : CoalescingRedis) : guarded ? StallGuardedRedis : Redis;
    const single = new Client(url, { ...gatewayRedisOptions(options), ...options.redisOptions });
    if (single instanceof StallGuardedRedis || single instanceof StallGuardedCoalescingRedis) single.configureStallGuard(stallSettings);
    if (options.duplicateCommandTimeoutMs !== undefined) {
      const commandTimeout = options.duplicateCommandTimeoutMs;
      const duplicate = single.duplicate.bind(single);
      // An own property: ioredis's duplicate() builds a plain Redis from this one's options.
      single.duplicate = (override) => duplicate({ commandTimeout, ...override });
    }
    redis = single;
  }
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
  private readonly cork = socketCorker();

  override sendCommand(...args: Parameters<Redis['sendCommand']>): ReturnType<Redis['sendCommand']> {
    // Only writes to the connection's own socket (a command given a stream is a pipeline's).
    if (args[1] === undefined && this.status === 'ready') this.cork(this.stream as Socket | undefined);
    return super.sendCommand(...args);
  }
}

/**
 * CoalescingRedis's corking on a node connection a Cluster made (the Cluster builds plain Redis
 * objects itself, so the node's own sendCommand is wrapped instead of its class chosen).
 */
export function coalesceNodeWrites(node: Redis): void {
  const cork = socketCorker();
  const send = node.sendCommand.bind(node);
  node.sendCommand = (...args: Parameters<Redis['sendCommand']>) => {
    if (args[1] === undefined && node.status === 'ready') cork(node.stream as Socket | undefined);
    return send(...args);
  };
}

/** Corks a socket for the rest of this turn of the event loop (one at a time; a no-op while corked). */
function socketCorker(): (socket: Socket | undefined) => void {
  let corked: Socket | null = null;
  const uncork = (): void => {
    const socket = corked;
    corked = null;
    socket?.uncork();
  };
  return (socket) => {
    if (corked !== null || !socket?.writable) return;
    socket.cork();
    corked = socket;
    setImmediate(uncork);
  };
}

/** Whether a connection made with failFastWhenStalled currently refuses commands (false for any other). */
export function isStalled(redis: RedisClient): boolean {
  return (redis instanceof StallGuardedRedis || redis instanceof StallGuardedCoalescingRedis || redis instanceof StallGuardedCluster) && redis.stalled;
}

/** What the stall guard needs of a connection: Redis and Cluster both have it. */
interface GuardableClient {
  status: string;
  on(event: string, listener: (...args: any[]) => void): unknown;
  ping(): Promise<string>;
  sendCommand(...args: any[]): unknown;
}
// The mixin pattern needs a constructor of any[] arguments.
type RedisClass = new (...args: any[]) => GuardableClient;

interface StallGuardSettings {
  probeMs: number;
  role: string;
  logger?: Logger;
}

/**
 * A connection that notices a stall (see GatewayRedisOptions.failFastWhenStalled). A mixin so
 * the coalescing connection can have it too. The cost on a healthy connection is one rejection
 * handler per command.
 */
function stallGuarded<Base extends RedisClass>(Base: Base) {
  return class StallGuarded extends Base {
    /** True while commands are refused: one timed out and no ping has been answered since. */
    stalled = false;
    private settings: StallGuardSettings = { probeMs: 250, role: 'redis' };
    private probeTimer: ReturnType<typeof setInterval> | undefined;
    private probing = false;
    /** Set around the probe's own PING, the one command let through while stalled. */
    private bypass = false;
    private readonly onCommandError = (error: unknown): void => {
      if (!this.stalled && this.status === 'ready' && error instanceof Error && error.message === 'Command timed out') this.markStalled();
    };

    configureStallGuard(settings: StallGuardSettings): void {
      this.settings = settings;
      // Disconnected is not stalled: the offline-queue rules apply, and a reconnect starts afresh.
      this.on('close', () => this.clearStall(false));
      this.on('ready', () => this.clearStall(true));
    }

    // Cluster's sendCommand takes a third argument (the node): passed through as given.
    override sendCommand(...args: Parameters<Redis['sendCommand']>): ReturnType<Redis['sendCommand']> {
      const command = args[0] as Parameters<Redis['sendCommand']>[0];
      if (this.stalled && !this.bypass) {
        command.reject(new StoreUnavailableError());
        return command.promise;
      }
      const reply = super.sendCommand(...args);
      // Also marks the rejection handled; the caller's own handlers see it all the same.
      command.promise.catch(this.onCommandError);
      return reply;
    }

    private markStalled(): void {
      this.stalled = true;
      this.settings.logger?.error({ role: this.settings.role }, 'redis is not answering (stalled): commands on this connection fail at once until it answers a ping');
      this.probeTimer ??= setInterval(() => this.probe(), this.settings.probeMs);
      this.probeTimer.unref();
    }

    private probe(): void {
      if (this.probing || !this.stalled) return;
      this.probing = true;
      this.bypass = true;
      let ping: Promise<unknown>;
      try {
        ping = this.ping();
      } finally {
        this.bypass = false;
      }
      ping.then(
        () => {
          this.probing = false;
          this.clearStall(true);
        },
        () => {
          this.probing = false;
        },
      );
    }

    private clearStall(answered: boolean): void {
      if (this.probeTimer) clearInterval(this.probeTimer);
      this.probeTimer = undefined;
      if (!this.stalled) return;
      this.stalled = false;
      if (answered) this.settings.logger?.info({ role: this.settings.role }, 'redis answers again: commands on this connection go through');
    }
  };
}

const StallGuardedRedis = stallGuarded(Redis);
const StallGuardedCoalescingRedis = stallGuarded(CoalescingRedis);
const StallGuardedCluster = stallGuarded(Cluster);
