import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { ProviderId } from '../../shared';
import { ephemeralJwtSecret, TokenService } from '../auth/tokens';
import { randomBytes } from 'node:crypto';
import { BusinessConfig } from '../business/BusinessConfig';
import { ByokVault } from '../byok/ByokVault';
import type { BusinessConfigRecords } from '../business/BusinessConfigRecords';
import { openDatabaseOfRecord, type DatabaseOfRecord } from '../db/openDatabaseOfRecord';
import { createAdapters } from '../providers/createAdapters';
import { baseUrlFor } from '../providers/registry';
import { UsageLedger } from '../usage/UsageLedger';
import type { UsagePool } from '../usage/pgUsage';
import { createMetrics, type GatewayMetrics } from '../observability/metrics';
import { createEnvReloader, type EnvReloader } from '../ops/envReloader';
import { createGatewayRedis, isStalled } from '../ops/createGatewayRedis';
import { duplicateClient, type RedisClient } from '../ops/redisClient';
import { createInstanceRegistry } from '../ops/instanceRegistry';
import { createReloadBroadcaster, type ReloadBroadcaster } from '../ops/reloadBroadcaster';
import { createResilientStore, type ResilientStore } from '../ops/resilientStore';
import { createShutdownCoordinator, type ShutdownCoordinator, type ShutdownReport } from '../ops/shutdown';
import { createTrackedEngine } from './trackedEngine';
import { withDegradedReads } from './degradedReads';
import { DEFAULT_BYOK_SETTINGS } from '../../shared/byok';
import { createMeteredChatEngine } from './meteredChatEngine';
import { createMeteredCalls } from './meteredCalls';
import type { ModelCatalog } from '../business/types';
import type { GatewayEnv } from '../config/env';
import { startupWarnings } from '../config/startupWarnings';
import { Dispatcher, type DispatcherDeps } from '../dispatch/Dispatcher';
import { startMockProvider, type MockProvider } from '../mock-provider/startMockProvider';
import { silentLogger, type Logger } from '../observability/logger';
import { KeyPool, poolConfigsFromEnv, type KeyPoolOptions, type PoolConfigInput } from '../pool/KeyPool';
import { createMemoryStore } from '../pool/stores/memoryStore';
import { createRedisStore } from '../pool/stores/redisStore';
import type { PoolStore } from '../pool/types';
import { baseUrlOverrides, PROVIDER_SPECS } from '../providers/registry';
import type { ChatEngine } from '../streams/ChatEngine';
import type { DocStore } from '../store/DocStore';
import { createMemoryDocStore } from '../store/memoryDocStore';
import { createRedisDocStore } from '../store/redisDocStore';
import { ChatStreams, type ChatStreamsOptions } from '../streams/ChatStreams';
import { RedisStreamBuffer, type RedisStreamBufferOptions } from '../streams/RedisStreamBuffer';
import type { GatewayDeps } from './context';
import type { ReloadReport } from '../ops/envReloader';
import { createHttpHandler, type ReadinessReport } from './createHttpHandler';
import { createChatStreamSse } from '../streams/chatStreamSse';
import { appRouter } from './router';

export interface CreateGatewayOptions {
  env: GatewayEnv;
  logger?: Logger;
  /** Replaces the model catalog (default: the store-backed BusinessConfig, seeded from defaults.json). */
  catalog?: ModelCatalog;
  /** Replaces the dispatcher (tests with a scripted engine). */
  engine?: ChatEngine;
  /** Extra dispatcher settings (sleep, clock, hooks, adapters) for tests. */
  dispatcher?: Partial<Omit<DispatcherDeps, 'pool' | 'catalog' | 'logger'>>;
  /** KeyPool settings (windowMs, cooldowns). */
  pool?: Omit<KeyPoolOptions, 'logger'>;
  /**
   * The migrated pool the usage ledger records into (tests); default the DATABASE_URL pool, and
   * without DATABASE_URL usage stays in the DocStore (issue 23).
   */
  usagePool?: UsagePool;
  /** Stream buffer settings (detachGraceMs, attachTimeoutMs, retainMs; maxStreamsPerUser over MAX_STREAMS_PER_USER). */
  streams?: Pick<ChatStreamsOptions, 'detachGraceMs' | 'attachTimeoutMs' | 'retainMs' | 'maxStreamsPerUser'>;
  /** The Redis stream copy's reader and heartbeat timings (tests). */
  streamBuffer?: Pick<RedisStreamBufferOptions, 'blockMs' | 'checkMs' | 'heartbeatMs' | 'livenessTtlMs'>;
  /** Demo mode's mock provider pace; default 30 ms per chunk so the demo visibly streams. */
  mockChunkDelayMs?: number;
  /** The built demo client; default dist/client. null = serve none. */
  clientDir?: string | null;
  poolWatchIntervalMs?: number;
  maxBodyBytes?: number;
  /** Chat requests' bodies (they may carry images); default DEFAULT_MAX_CHAT_BODY_BYTES (createHttpHandler). */
  maxChatBodyBytes?: number;
  /**
   * Slow clients (slowloris): a request whose headers are not in within headersTimeoutMs, or whose
   * body is not in within requestTimeoutMs, is cut. Defaults 10 s / 30 s (responses, streams
   * included, are not limited by these).
   */
  http?: { headersTimeoutMs?: number; requestTimeoutMs?: number; /** Default true (createHttpHandler). */ trpcFastPath?: boolean };
  /** The process environment without the ENV_FILE's variables (snapshot before dotenv): what pool.reload re-reads on top of. */
  baseEnv?: Record<string, string | undefined>;
}

export interface Gateway {
  server: Server;
  /** http://HOST:PORT (the port actually bound when PORT=0). */
  url: string;
  port: number;
  demoMode: boolean;
  /** Demo mode: the built-in mock provider every provider points at. */
  mock: MockProvider | null;
  pool: KeyPool;
  /** Business data (config, models, BYOK records, usage): Redis when REDIS_URL is set. */
  docStore: DocStore;
  business: BusinessConfig;
  /** PostgreSQL, the database of record for config, catalog and BYOK records (DATABASE_URL); null without it. */
  database: DatabaseOfRecord | null;
  tokens: TokenService;
  deps: GatewayDeps;
  metrics: GatewayMetrics;
  /** Re-reads ENV_FILE and applies the key difference (pool.reload, SIGHUP). */
  reloader: EnvReloader;
  /** pool.reload / SIGHUP: reload here, then tell every instance sharing Redis. */
  reload(): Promise<ReloadReport>;
  /** The pool store's Redis-outage fallback (null without REDIS_URL). */
  resilientStore: ResilientStore | null;
  /** Tracks every answer in flight; close() drains it. */
  coordinator: ShutdownCoordinator;
  /** What the last close() did (null before). */
  shutdownReport(): ShutdownReport | null;
  /** Stops accepting, aborts streams still running after SHUTDOWN_GRACE_MS, closes store and mock. */
  close(): Promise<void>;
}

/** /readyz's providers check for a gateway without shared keys whose users bring their own. */
const BYOK_ONLY = "byok-only: no shared provider keys, users' own keys serve";
const DEFAULT_CLIENT_DIR = fileURLToPath(new URL('../../dist/client', import.meta.url));
/** Two obviously fake keys per provider in demo mode, so the pool and admin panel show rotation. */
const DEMO_KEYS_PER_PROVIDER = 2;
/** Connections the kernel may queue before the gateway accepts them (see the listen call). */
const LISTEN_BACKLOG = 4096;

/** The composition root: store, pool, catalog, dispatcher, stream buffer, and one HTTP server. */
export async function createGateway(options: CreateGatewayOptions): Promise<Gateway> {
  const { env } = options;
  const logger = options.logger ?? silentLogger;
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  };

  try {
    let jwtSecret = env.jwtSecret;
    if (!jwtSecret) {
      // parseGatewayEnv only allows this in demo mode.
      jwtSecret = ephemeralJwtSecret();
      logger.warn('JWT_SECRET is unset: using a random secret for this process; tokens stop working when it exits');
    }
    const tokens = new TokenService(jwtSecret, { issuer: env.jwtIssuer, audience: env.jwtAudience, maxAgeSeconds: env.jwtMaxAgeSeconds });

    // Three connections: the pool's fails fast while Redis is away (the resilient store falls
    // back to a local limiter); the data one (business config, BYOK, usage) queues briefly
    // across reconnects and fails fast on a stall, its duplicates carrying blocking reads; the
    // streams one, like the data one, carries the chat streams' durable copy. None blocks start-up.
    let redis: RedisClient | null = null;
    let streamsRedis: RedisClient | null = null;
    let poolRedis: RedisClient | null = null;
    let resilientStore: ResilientStore | null = null;
    let redisUpAtStart = true;
    let store: PoolStore;
    if (env.redisUrl) {
      // Pool scripts only (one pick per request, never a blocking command), writes coalesced:
      // one write per turn of the event loop instead of one per script call (a write per
      // EVALSHA was 12% of the gateway's busy time at full load), without the Pipeline object
      // per batch that ioredis's auto-pipelining allocates (CoalescingRedis; issue #8).
      // REDIS_CLUSTER / redis+cluster:// (issue 22): the same three, as ioredis Cluster clients.
      const cluster = env.redisCluster;
      const pr = createGatewayRedis(env.redisUrl, { role: 'pool', logger, coalesceWrites: true, cluster });
      const dr = createDataRedis(env.redisUrl, logger, 'data', { requestPath: true, cluster });
      // Its own connection, writes coalesced per turn: each stream start sets an owner key (1,000
      // streams starting together were 1,000 socket writes, ~66 us each), and a flush sends
      // script calls of up to 200 streams' events, which would hold up a request's usage-limit
      // check queued behind them on the data connection (issue #8).
      const sr = createDataRedis(env.redisUrl, logger, 'streams', { coalesceWrites: true, cluster });
      poolRedis = pr;
      redis = dr;
      streamsRedis = sr;
      cleanups.push(() => void dr.disconnect());
      cleanups.push(() => void sr.disconnect());
      cleanups.push(() => void pr.disconnect());
      redisUpAtStart = await readyWithin(dr, 2_000);
      const registry = createInstanceRegistry({ redis: pr, prefix: env.redisPrefix, logger });
      registry.start();
      cleanups.push(() => registry.stop());
      resilientStore = createResilientStore({ redis: pr, primary: createRedisStore({ redis: pr, prefix: env.redisPrefix }), instanceCount: registry.count, logger });
      store = resilientStore;
    } else {
      store = createMemoryStore();
    }
    cleanups.push(() => store.close());

    let mock: MockProvider | null = null;
    let poolConfigs: PoolConfigInput[];
    let baseUrls: Partial<Record<ProviderId, string>>;
    if (env.demoMode) {
      mock = await startDemoMock(env, options.mockChunkDelayMs ?? 30, logger);
      const m = mock;
      cleanups.push(() => m.close());
      baseUrls = {};
      poolConfigs = env.providers.map((p) => {
        const wire = PROVIDER_SPECS[p.provider].wireFormat;
        baseUrls[p.provider] = wire === 'openai' ? m.baseUrls.openai : wire === 'anthropic' ? m.baseUrls.anthropic : m.baseUrls.gemini;
        return {
          id: p.provider,
          provider: p.provider,
          strategy: p.strategy,
          rpm: p.rpmPerKey,
          tpm: p.tpmPerKey,
          keys: Array.from({ length: DEMO_KEYS_PER_PROVIDER }, (_, i) => ({ secret: `sk-test-demo-${p.provider}-${i + 1}`, account: null })),
          // Issue 22: only a pool whose requests may wait has a queue.
          ...(p.queueMaxWaitMs > 0 ? { queueMax: p.queueMax, queueMaxWaitMs: p.queueMaxWaitMs } : {}),
        };
      });
    } else {
      poolConfigs = poolConfigsFromEnv(env);
      baseUrls = baseUrlOverrides(env.providers);
    }
    const metrics = createMetrics();
    // Issue 22: how long requests waited for a key, per provider.
    const onWait: KeyPoolOptions['onWait'] = (event) => metrics.queueWait.observe({ provider: event.provider, outcome: event.outcome }, event.waitedMs / 1000);
    const pool = new KeyPool(timedStore(store, metrics), { onWait, ...options.pool, logger });
    pool.setPools(poolConfigs);

    const docStore = redis ? createRedisDocStore({ redis, prefix: env.redisPrefix, logger }) : createMemoryDocStore();
    cleanups.push(() => docStore.close());
    // With DATABASE_URL the records live in PostgreSQL; the DocStore still carries the change
    // notifications and the caches' invalidation (Redis pub/sub, or in process without REDIS_URL).
    const database = env.databaseUrl ? await openDatabaseOfRecord(env.databaseUrl, { logger }) : null;
    if (database) cleanups.push(() => database.close());
    const business = await startBusinessConfig(docStore, redis, redisUpAtStart, logger, cleanups, database?.business);
    const catalog = options.catalog ?? business;
    let encryptionKey = env.encryptionKey;
    if (!encryptionKey) {
      // Without ENCRYPTION_KEY users' keys cannot outlive the process, nor be read by another
      // instance: a random key is fine for the demo; otherwise BYOK is off until it is set.
      if (env.demoMode) {
        encryptionKey = randomBytes(32);
        logger.warn('ENCRYPTION_KEY is unset: BYOK keys are encrypted with a random key for this process only');
      } else logger.error('ENCRYPTION_KEY is unset: BYOK is off (users cannot add their own keys) until it is set');
    }
    const vault = new ByokVault({ store: docStore, ...(database ? { records: database.byok } : {}), encryptionKey, ...(env.encryptionKeyPrevious ? { previousEncryptionKey: env.encryptionKeyPrevious } : {}), logger });
    // Issue 23: with DATABASE_URL, usage and limits live in PostgreSQL (Redis: windows, holds, spend mirror).
    const usagePool = options.usagePool ?? database?.pool;
    const ledger = new UsageLedger({ store: docStore, ...(usagePool ? { pool: usagePool } : {}), logger });
    metrics.usageOutbox.readFrom(() => ledger.pending);
    // The per-user caches on the chat path turn on once their change channel is subscribed; not
    // awaited, so a Redis away at start-up delays only the caching (reads go to the store meanwhile).
    for (const cached of [vault, ledger]) void cached.init().catch((error: unknown) => logger.warn({ err: error instanceof Error ? error.message : 'error' }, 'per-user cache stays off'));
    const coordinator = createShutdownCoordinator({ logger, onOpenStreams: (n) => metrics.openStreams.set(n) });
    const onAttempt: NonNullable<NonNullable<DispatcherDeps['hooks']>['onAttempt']> = (attempt) => {
      metrics.upstreamLatency.observe({ provider: attempt.provider, outcome: attempt.outcome }, attempt.durationMs / 1000);
      if (attempt.outcome !== 'success' && attempt.outcome !== 'aborted') metrics.retries.inc({ provider: attempt.provider, reason: attempt.outcome });
      if (attempt.outcome === 'rate_limited' || attempt.outcome === 'quota_exhausted' || attempt.outcome === 'rejected') {
        metrics.cooldowns.inc({ provider: attempt.provider, kind: attempt.outcome });
      }
    };
    const adapters = createAdapters();
    const testKey = (provider: ProviderId, apiKey: string) =>
      adapters[provider].testKey({ apiKey, baseUrl: baseUrlFor(provider, baseUrls), signal: AbortSignal.timeout(10_000) });
    // A chat must not fail because BYOK records are unreadable (Redis away): no own keys then.
    const chatVault = withDegradedReads<ByokVault>({
      target: () => vault,
      name: 'byok vault',
      logger,
      cacheLastGood: false,
      fallbacks: {
        list: async () => [],
        getSettings: async () => ({ ...DEFAULT_BYOK_SETTINGS }),
        getSecrets: async () => [],
        routing: async () => ({ providers: new Set(), fallbackToSharedPool: true }),
      },
    });
    const dispatcher = new Dispatcher({ maxAttempts: env.maxAttempts, deadlineMs: env.requestTimeoutMs, firstByteTimeoutMs: env.firstByteTimeoutMs, learnLimits: env.learnLimits, baseUrls, hooks: { onAttempt }, ...options.dispatcher, pool, catalog, logger });
    const innerEngine =
      options.engine ??
      createMeteredChatEngine({
        inner: dispatcher,
        business,
        ledger,
        vault: chatVault,
        pool,
        logger,
      });
    const engine = createTrackedEngine({ inner: innerEngine, coordinator, metrics, idleTimeoutMs: env.requestTimeoutMs });
    // Embeddings, messages, responses (issue 21): the same dispatcher, limits, BYOK keys and ledger as chat.
    // Priced by the catalog the dispatcher serves from (a test's own catalog, else the business config).
    const calls = createMeteredCalls({ inner: dispatcher, business: { getSettings: () => business.getSettings(), resolve: (name) => catalog.resolve(name) }, ledger, vault: chatVault, pool, coordinator, metrics, logger });
    const durable = streamsRedis ? new RedisStreamBuffer({ redis: streamsRedis, prefix: env.redisPrefix, ...options.streamBuffer }) : undefined;
    if (durable) cleanups.push(() => durable.close());
    const streams = new ChatStreams({ engine, logger, ...(durable ? { durable } : {}), maxStreamsPerUser: env.maxStreamsPerUser, ...options.streams });
    // Demo pools are made up in code: a reload would replace them with the (empty) file's.
    const reloader = createEnvReloader({ pool, envFile: env.envFile, baseEnv: options.baseEnv ?? {}, current: env, logger });
    const reloadHere = async (): Promise<ReloadReport> => {
      if (env.demoMode) return { ok: false as const, problems: [{ variable: 'ENV_FILE', problem: 'demo mode has no provider keys to reload; restart with keys set' }] };
      return reloader.reload();
    };
    let broadcaster: ReloadBroadcaster | null = null;
    if (redis && poolRedis) {
      // Its own connection (a subscribed client can do nothing else), queueing until Redis is up.
      const subscriber = duplicateClient(redis, { maxRetriesPerRequest: null });
      subscriber.on('error', () => {});
      cleanups.push(() => void subscriber.disconnect());
      const b = createReloadBroadcaster({ subscriber, publisher: poolRedis, prefix: env.redisPrefix, reload: reloadHere, logger });
      broadcaster = b;
      void b.start();
      cleanups.push(() => b.close());
    }
    const reload = async (): Promise<ReloadReport> => {
      const report = await reloadHere();
      if (report.ok && broadcaster) await broadcaster.announce();
      return report;
    };
    const deps: GatewayDeps = {
      engine,
      calls,
      streams,
      catalog,
      pool,
      tokens,
      logger,
      domain: { business, vault, ledger, testKey },
      reload,
      ...(options.poolWatchIntervalMs !== undefined ? { poolWatchIntervalMs: options.poolWatchIntervalMs } : {}),
    };

    const readiness = async (): Promise<ReadinessReport> => {
      const checks: ReadinessReport['checks'] = {};
      if (redis) checks.store = await storeReadiness(redis);
      else checks.store = await store.now().then(() => 'ok', () => 'unreachable');
      if (database) checks.database = await database.ping();
      if (checks.store === 'ok' && resilientStore?.isDegraded()) checks.store = 'degraded: serving from the local fallback limiter';
      // Read from the pool, not the start-up config: a reload may add or remove every shared key.
      const sharedKeys = env.providers.some((p) => pool.has(p.provider));
      // BYOK-only (no shared keys, users bring theirs) is a supported production mode: ready.
      // No shared keys and no way to add one (ENCRYPTION_KEY unset) serves no one: not ready.
      checks.providers = sharedKeys ? 'ok' : encryptionKey ? BYOK_ONLY : 'no provider has keys and BYOK is off (ENCRYPTION_KEY unset)';
      return { ok: Object.values(checks).every((c) => c === 'ok' || c === BYOK_ONLY), checks };
    };

    const refreshPoolGauges = async () => {
      const status = await pool.status();
      for (const p of status.providers) {
        metrics.coolingKeys.set({ provider: p.provider }, p.totals.cooling);
        metrics.disabledKeys.set({ provider: p.provider }, p.totals.disabled);
        if (p.queue) metrics.queueLength.set({ provider: p.provider }, p.queue.length);
      }
    };
    const headersTimeout = options.http?.headersTimeoutMs ?? 10_000;
    const httpHandler = createHttpHandler({
      deps,
      corsOrigins: env.corsOrigins,
      ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
      ...(options.maxChatBodyBytes !== undefined ? { maxChatBodyBytes: options.maxChatBodyBytes } : {}),
      clientDir: options.clientDir === undefined ? DEFAULT_CLIENT_DIR : options.clientDir,
      devTokens: env.devTokens,
      readiness,
      metrics: { registry: metrics.registry, token: env.metricsToken, refresh: refreshPoolGauges },
      ...(options.http?.trpcFastPath !== undefined ? { trpcFastPath: options.http.trpcFastPath } : {}),
    });
    // chat.stream's common case is written straight to the socket (tRPC's SSE body costs ~1 MiB
    // and most of the CPU per stream at 1,000 streams, issue #8); anything else goes to tRPC.
    const chatStreamSse = createChatStreamSse({ tokens, streams, logger, sse: appRouter._def._config.sse ?? {} });
    const listener: Parameters<typeof createServer>[1] = (req, res) => {
      if (req.method !== 'GET' || !req.url?.startsWith('/trpc/chat.stream?')) return httpHandler(req, res);
      chatStreamSse(req, res).then(
        (handled) => {
          if (!handled) httpHandler(req, res);
        },
        (error: unknown) => {
          logger.error({ err: error instanceof Error ? error.message : String(error) }, 'chat.stream fast path failed');
          if (!res.headersSent) httpHandler(req, res);
          else res.destroy();
        },
      );
    };
    const server = createServer(
      {
        headersTimeout,
        requestTimeout: Math.max(headersTimeout, options.http?.requestTimeoutMs ?? 30_000),
        // How often Node checks those timeouts (default 30 s would let a slow client linger).
        connectionsCheckingInterval: Math.min(1_000, headersTimeout),
      },
      listener,
    );
    // Idle keep-alive connections stay open 65 s (Node's default is 5 s): a client reusing one
    // just as the server closes it gets ECONNRESET, which happened to 1-9% of chat.stream GETs
    // at 1,000 streams, when both event loops lag past undici's 1 s margin (issue #8).
    // Longer than the clients' idle timeouts and the usual 60 s of a load balancer in front.
    server.keepAliveTimeout = 65_000;
    // A queue of connections not yet accepted as long as the kernel allows (somaxconn, 4096 on
    // current Linux) instead of Node's 511: a burst of a thousand new connections while the
    // event loop is busy overflowed 511, and the kernel reset some of them (ECONNRESET at the
    // client, seen in the 1,000-stream fault test on a loaded box).
    server.listen({ port: env.port, host: env.host, backlog: LISTEN_BACKLOG });
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const url = `http://${env.host.includes(':') ? `[${env.host}]` : env.host}:${port}`;
    for (const warning of startupWarnings(env)) logger.warn(warning);
    if (env.demoMode) {
      logger.info(
        { url, mockProvider: mock?.url, devTokens: env.devTokens },
        `DEMO MODE: answers come from the built-in mock provider at ${mock?.url} (fake sk-test-demo keys)` +
          (env.devTokens ? '; POST /dev/token mints tokens for the demo login' : '; JWT_SECRET is set, so there is no POST /dev/token: mint tokens with npm run token'),
      );
    }

    // Shutdown: stop accepting, let answers in flight finish within SHUTDOWN_GRACE_MS, end the
    // rest with `shutting_down`, then flush usage before Redis goes (cleanups run in reverse).
    let report: ShutdownReport | null = null;
    let closing: Promise<void> | null = null;
    const close = () =>
      (closing ??= (async () => {
        server.closeIdleConnections();
        report = await coordinator.shutdown({
          graceMs: env.shutdownGraceMs,
          // Not awaited: an idle subscription (pool.watch) would hold it; the closer below cuts those.
          stopAccepting: () => {
            server.close();
            server.closeIdleConnections();
          },
          closers: [
            {
              name: 'connections',
              close: () => {
                streams.close();
                server.closeAllConnections();
              },
            },
            { name: 'usage flush', close: () => ledger.close() },
            { name: 'stores and redis', close: cleanup },
          ],
        });
      })());

    return {
      server,
      url,
      port,
      demoMode: env.demoMode,
      mock,
      pool,
      docStore,
      business,
      database,
      tokens,
      deps,
      metrics,
      reloader,
      reload,
      resilientStore,
      coordinator,
      shutdownReport: () => report,
      close,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

async function startDemoMock(env: GatewayEnv, chunkDelayMs: number, logger: Logger): Promise<MockProvider> {
  try {
    return await startMockProvider({ port: env.mockProviderPort, chunkDelayMs });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    logger.warn({ port: env.mockProviderPort }, 'MOCK_PROVIDER_PORT is taken; the mock provider uses a free port instead');
    return startMockProvider({ port: 0, chunkDelayMs });
  }
}

/** True once the connection is ready, false when `ms` passes first (Redis down: start anyway). */
function readyWithin(redis: RedisClient, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, ms);
    redis.once('ready', onReady);
  });
}

/**
 * The business catalog and settings. With Redis away at start-up the gateway still starts:
 * the catalog is served from defaults.json in memory (config edits meanwhile are not shared)
 * and the shared one replaces it as soon as Redis answers.
 */
async function startBusinessConfig(
  docStore: DocStore,
  docStoreRedis: RedisClient | null,
  redisUp: boolean,
  logger: Logger,
  cleanups: (() => Promise<void> | void)[],
  records?: BusinessConfigRecords,
): Promise<BusinessConfig> {
  const shared = new BusinessConfig({
    store: docStore,
    ...(records ? { records } : {}),
    onReseed: () =>
      logger.error(
        records?.kind === 'postgres'
          ? "BUSINESS DATA WAS GONE FROM POSTGRESQL (system_config's seeded_at row deleted?): the model catalog and settings were re-seeded from defaults.json"
          : 'BUSINESS DATA WAS GONE FROM REDIS (restarted without persistence?): the model catalog and settings were re-seeded from defaults.json; admin changes are lost',
      ),
  });
  // defaults.json in memory: what reads fall back to while the shared store is away.
  const local = new BusinessConfig({ store: createMemoryDocStore() });
  await local.init();
  let current = shared;
  const degradable = () =>
    withDegradedReads<BusinessConfig>({
      target: () => current,
      name: 'business config',
      logger,
      fallbacks: {
        getConfig: () => local.getConfig(),
        getSettings: () => local.getSettings(),
        resolve: (name: string) => local.resolve(name),
        list: () => local.list(),
      },
    });
  if (redisUp) {
    try {
      await shared.init();
      return degradable();
    } catch (error) {
      logger.error({ err: error instanceof Error ? error.name : 'error' }, 'business config unavailable at start-up');
    }
  }
  logger.error('REDIS UNAVAILABLE AT START-UP: serving the model catalog from defaults.json in memory until Redis answers');
  current = local;
  let stopped = false;
  let trying = false;
  const retry = setInterval(() => {
    // Only once connected: a SUBSCRIBE failed while down would be remembered by the store.
    if (trying || docStoreRedis?.status !== 'ready') return;
    trying = true;
    shared.init().finally(() => (trying = false)).then(
      () => {
        if (stopped) return;
        clearInterval(retry);
        current = shared;
        logger.info('business config: back on the shared store');
      },
      () => undefined,
    );
  }, 2_000);
  retry.unref();
  cleanups.push(() => {
    stopped = true;
    clearInterval(retry);
  });
  // Callers hold this one object; it forwards to whichever config is current.
  return degradable();
}

/**
 * A data connection (business config, BYOK, usage; or the stream buffers). Commands wait in the
 * offline queue across a reconnect (so a fresh duplicate's SUBSCRIBE or XREAD waits for its first
 * connect), but while Redis is away every queued command fails at the next reconnect attempt
 * (every 250 ms at most): callers fall back (degraded reads, the usage outbox) instead of waiting.
 * On the request path (`requestPath`: business config, BYOK, usage), a Redis that stalls
 * (connected, not answering) costs the first command 1 s and the ones after it nothing: they
 * fail at once until a ping is answered (failFastWhenStalled; issue 24.8: each waited 10 s).
 * Duplicates carry blocking reads and SUBSCRIBE, so they keep the long timeout. The streams
 * connection keeps 10 s: nothing on a request waits for its writes, and under a heavy stream
 * load a reply late behind a busy event loop must not fail a durable copy's batch.
 */
function createDataRedis(url: string, logger: Logger, role: string, options: { coalesceWrites?: boolean; requestPath?: boolean; cluster?: boolean } = {}): RedisClient {
  const requestPath = options.requestPath ?? false;
  return createGatewayRedis(url, {
    role,
    cluster: options.cluster ?? false,
    logger,
    coalesceWrites: options.coalesceWrites ?? false,
    offlineQueue: true,
    commandTimeoutMs: requestPath ? DATA_COMMAND_TIMEOUT_MS : BLOCKING_COMMAND_TIMEOUT_MS,
    failFastWhenStalled: requestPath,
    duplicateCommandTimeoutMs: BLOCKING_COMMAND_TIMEOUT_MS,
    redisOptions: { maxRetriesPerRequest: 0, retryStrategy: (attempt) => Math.min(50 * attempt, 250) },
  });
}

/** A request-path command on a data connection fails after this (the pool connection's is the same). */
const DATA_COMMAND_TIMEOUT_MS = 1_000;
/** Streams connection and duplicates (XREAD BLOCK 2 s, SUBSCRIBE): the timeout they always had. */
const BLOCKING_COMMAND_TIMEOUT_MS = 10_000;
/** /readyz waits this long for Redis's PONG before it says `stalled`. */
const READINESS_PING_MS = 500;

/**
 * The store line of /readyz, answered within READINESS_PING_MS whatever Redis does: `unreachable`
 * (disconnected, or the ping failed), `stalled` (connected, no PONG in time) or `ok`.
 */
async function storeReadiness(redis: RedisClient): Promise<string> {
  if (redis.status !== 'ready') return 'unreachable';
  if (isStalled(redis)) return 'stalled';
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('stalled'), READINESS_PING_MS)));
  try {
    return await Promise.race([redis.ping().then(() => 'ok', () => 'unreachable'), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The pool store's pick/record latency into keyrack_store_latency_seconds (two calls per request). */
function timedStore(store: PoolStore, metrics: GatewayMetrics): PoolStore {
  // One observation per call and nothing else: no async wrapper, no timer closure from
  // prom-client's startTimer, label objects made once (this runs twice per request, issue #8).
  const timed = <R>(labels: { operation: string }, call: Promise<R>, startedAt: number): Promise<R> => {
    const observe = () => metrics.storeLatency.observe(labels, (performance.now() - startedAt) / 1000);
    return call.finally(observe);
  };
  const PICK = { operation: 'pick' };
  const RECORD = { operation: 'record' };
  return {
    pick: (pool, ask) => {
      const startedAt = performance.now();
      return timed(PICK, ask === undefined ? store.pick(pool) : store.pick(pool, ask), startedAt);
    },
    // Issue 22: the wait queue and the admin view of fair share, untimed.
    ...(store.leave ? { leave: store.leave.bind(store) } : {}),
    ...(store.fairness ? { fairness: store.fairness.bind(store) } : {}),
    record: (pool, fingerprint, outcome) => {
      const startedAt = performance.now();
      return timed(RECORD, store.record(pool, fingerprint, outcome), startedAt);
    },
    setEnabled: (pool, fingerprint, enabled) => store.setEnabled(pool, fingerprint, enabled),
    status: (pool) => store.status(pool),
    now: () => store.now(),
    close: () => store.close(),
  };
}
