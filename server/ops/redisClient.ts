import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * The one Redis connection type of the gateway, its CLIs and its stores: a single node (ioredis
 * `Redis`) or a Redis Cluster (ioredis `Cluster`, issue 22). Both run the same commands and
 * scripts; the differences the code must mind live here: how a connection is duplicated, how
 * the whole key space is walked (SCAN per master), and that every multi-key command, script
 * and MULTI must touch one slot (the key layouts are hash-tagged for that; see README
 * "Operations", Redis Cluster).
 */
export type RedisClient = Redis | Cluster;

/** Where REDIS_URL points: one server, or a cluster's seed nodes with the shared credentials. */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: ClusterNode[]; redisOptions: Pick<RedisOptions, 'username' | 'password' | 'tls'> };

const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\//i;

/**
 * Parses REDIS_URL (and REDIS_CLUSTER): `redis+cluster://[user:pass@]host:port,host:port,...`
 * (`rediss+cluster://` for TLS) names a cluster by its seed nodes; any `redis://` / `rediss://`
 * URL with `cluster` true names one seed node of a cluster; otherwise a single server. The
 * credentials apply to every node. Throws a message without the URL (it may hold a password).
 */
export function parseRedisTarget(url: string, cluster = false): RedisTarget {
  const scheme = CLUSTER_SCHEME.exec(url);
  if (!scheme && !cluster) return { kind: 'single', url };
  const tls = (scheme ? scheme[1]! : url.slice(0, url.indexOf(':'))).toLowerCase() === 'rediss';
  let rest = scheme ? url.slice(scheme[0].length) : url.replace(/^rediss?:\/\//i, '');
  const slash = rest.search(/[/?#]/);
  if (slash !== -1) rest = rest.slice(0, slash);
  const at = rest.lastIndexOf('@');
  const auth = at === -1 ? '' : rest.slice(0, at);
  const hosts = at === -1 ? rest : rest.slice(at + 1);
  const nodes = hosts.split(',').map((hostPort) => {
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(hostPort.trim());
    if (!m) throw new Error('REDIS_URL: a cluster URL lists host:port seed nodes separated by commas');
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : 6379 };
  });
  const redisOptions: Pick<RedisOptions, 'username' | 'password' | 'tls'> = {};
  if (auth) {
    const colon = auth.indexOf(':');
    const user = decodeURIComponent(colon === -1 ? auth : auth.slice(0, colon));
    const password = colon === -1 ? '' : decodeURIComponent(auth.slice(colon + 1));
    if (colon === -1) redisOptions.password = user;
    else {
      if (user) redisOptions.username = user;
      redisOptions.password = password;
    }
  }
  if (tls) redisOptions.tls = {};
  return { kind: 'cluster', nodes, redisOptions };
}

/**
 * A connection to `url` with per-node `options` (timeouts, retries): a `Redis`, or a `Cluster`
 * whose nodes get `options` and whose own retry/queue settings are derived from them. The CLIs
 * and tests use this; the gateway's connections come from createGatewayRedis (built on it).
 */
export function connectRedis(url: string, options: RedisOptions & { cluster?: boolean } = {}): RedisClient {
  const { cluster, ...redisOptions } = options;
  const target = parseRedisTarget(url, cluster);
  if (target.kind === 'single') return new Redis(url, redisOptions);
  return new Cluster(target.nodes, clusterOptionsFrom({ ...redisOptions, ...target.redisOptions }));
}

/** Cluster options from single-node ones: the per-node part goes to redisOptions, the rest maps. */
export function clusterOptionsFrom(options: RedisOptions, extra: ClusterOptions = {}): ClusterOptions {
  const { retryStrategy, enableOfflineQueue, enableReadyCheck, lazyConnect, ...perNode } = options;
  // ioredis's default slotsRefreshTimeout (1 s) is shorter than a busy box's first answers.
  return {
    ...(retryStrategy ? { clusterRetryStrategy: (times: number) => retryStrategy(times) ?? null } : {}),
    ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
    ...(enableReadyCheck !== undefined ? { enableReadyCheck } : {}),
    ...(lazyConnect !== undefined ? { lazyConnect } : {}),
    slotsRefreshTimeout: 2_000,
    ...extra,
    redisOptions: { ...perNode, ...extra.redisOptions },
  };
}

export function isClusterClient(redis: RedisClient): redis is Cluster {
  return redis.isCluster;
}

/**
 * Another connection like this one (a subscriber, a blocking reader), `override` on top: for a
 * cluster the per-node options (`commandTimeout`, `maxRetriesPerRequest`) apply to its nodes.
 */
export function duplicateClient(redis: RedisClient, override: Partial<RedisOptions> = {}): RedisClient {
  if (!isClusterClient(redis)) return redis.duplicate(override);
  const { enableOfflineQueue, ...perNode } = override;
  return redis.duplicate(undefined, {
    ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
    redisOptions: { ...redis.options.redisOptions, ...duplicateDefaults.get(redis), ...perNode },
  });
}

/**
 * Every key matching `match` (a SCAN pattern), in batches: SCAN on a single node, SCAN on
 * each master of a cluster (a key lives on exactly one). A key may come more than once.
 */
export async function* scanKeys(redis: RedisClient, match: string, count = 1000): AsyncGenerator<string[]> {
  const nodes: Redis[] = isClusterClient(redis) ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    for await (const batch of node.scanStream({ match, count }) as AsyncIterable<string[]>) yield batch;
  }
}

const duplicateDefaults = new WeakMap<Cluster, Partial<RedisOptions>>();

/** Per-node options every duplicate of `cluster` gets unless told otherwise (createGatewayRedis's duplicateCommandTimeoutMs). */
export function setDuplicateDefaults(cluster: Cluster, defaults: Partial<RedisOptions>): void {
  duplicateDefaults.set(cluster, defaults);
}
