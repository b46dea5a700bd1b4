import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { buildServer, startCommand } from '../scripts/buildServer';
import { TokenService } from '../server/auth/tokens';
import { startRedisCluster } from '../test/support/redisCluster';
import { freePort, startRedisServer } from '../test/support/redisServer';
import { ChildProcesses, waitForPort, type BenchChild } from './ChildProcesses';
import { PROBE_MARKER } from './probe/eventLoopProbe';

/**
 * Everything the benchmark measures, each its own process on 127.0.0.1: Redis, the mock
 * provider, the bare pass-through proxy and the Keyrack gateway as production runs it (the
 * bundle of server/main.ts that `npm start` builds, under plain node with npm start's flags),
 * with the event-loop probe preloaded.
 */
export interface BenchStack {
  redisUrl: string;
  redisPort: number;
  /**
   * A local 3-master Redis Cluster, `redis+cluster://127.0.0.1:p1,...` (issue 22), when the
   * stack was asked for one (StackOptions.redisCluster); nothing but bench/poolPicks.ts uses it.
   */
  redisClusterUrl: string | undefined;
  mockUrl: string;
  /** The mock's OpenAI base URL: http://127.0.0.1:P/openai/v1 */
  directBase: string;
  /** http://127.0.0.1:P (serves /v1/chat/completions) */
  bareUrl: string;
  /** http://127.0.0.1:P */
  gatewayUrl: string;
  gateway: BenchChild;
  /** The bare proxy's process, with the same event-loop probe as the gateway. */
  bare: BenchChild;
  token: string;
  /** The provider key the direct client and the bare proxy send (the gateway has its own). */
  directKey: string;
  configureMock(settings: { chunkDelayMs?: number; chunkCount?: number | null }): Promise<void>;
  /** Event-loop delay of the gateway since the previous call (see probe/eventLoopProbe.ts). */
  probeGateway(): Promise<ProbeReport>;
  /** The same for the bare proxy. */
  probeBare(): Promise<ProbeReport>;
}

export interface ProbeReport {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  /** CPU time the process spent since the previous report, in user space and in the kernel. */
  cpuUserMs: number;
  cpuSystemMs: number;
}

export interface StackOptions {
  /** Extra node flags for the gateway, e.g. `--cpu-prof`. */
  gatewayNodeArgs?: string[];
  /** Keys in the gateway's OpenAI pool. */
  gatewayKeys?: number;
  /**
   * 'compiled' (default): build dist/server/main.js once and run it under plain node, as
   * `npm start` does. 'tsx': `node --import tsx server/main.ts`, as `npm start` did before
   * (kept to compare the two).
   */
  gatewayRuntime?: 'compiled' | 'tsx';
  /** Also start a local 3-master Redis Cluster (section 5's cluster row). Default false. */
  redisCluster?: boolean;
}

export async function startBenchStack(children: ChildProcesses, options: StackOptions = {}): Promise<BenchStack> {
  // Side by side (the cluster takes a few seconds to agree on its slots); whichever started is
  // tracked before a failure of the other is thrown, so stopAll stops it.
  const [redisStarted, clusterStarted] = await Promise.allSettled([startRedisServer(), options.redisCluster ? startRedisCluster() : undefined]);
  if (redisStarted.status === 'fulfilled') children.track('redis', redisStarted.value.process);
  const cluster = clusterStarted.status === 'fulfilled' ? clusterStarted.value : undefined;
  if (cluster) {
    cluster.processes.forEach((node, i) => children.track(`redis cluster node ${cluster.ports[i]}`, node));
    // Its stop() finds the nodes stopped already and removes their config directory.
    children.afterStop(() => cluster.stop());
  }
  if (redisStarted.status === 'rejected') throw redisStarted.reason;
  if (clusterStarted.status === 'rejected') throw clusterStarted.reason;
  const redis = redisStarted.value;

  const [mockPort, barePort, gatewayPort] = [await freePort(), await freePort(), await freePort()];
  const mock = children.spawnTs('mock provider', 'server/mock-provider/main.ts', {
    env: { MOCK_PROVIDER_PORT: String(mockPort), MOCK_PROVIDER_CHUNK_DELAY_MS: '0' },
  });
  const mockUrl = `http://127.0.0.1:${mockPort}`;
  const directBase = `${mockUrl}/openai/v1`;
  const directKey = 'sk-test-bench-direct-0001';
  const bare = children.spawnTs('bare proxy', 'bench/bareProxyMain.ts', {
    nodeArgs: ['--import', './bench/probe/eventLoopProbe.ts'],
    env: { BARE_PROXY_PORT: String(barePort), BARE_PROXY_UPSTREAM: directBase, BARE_PROXY_KEY: directKey },
  });

  const jwtSecret = randomBytes(36).toString('base64url');
  const keyCount = options.gatewayKeys ?? 4;
  const keys: Record<string, string> = {};
  for (let i = 1; i <= keyCount; i += 1) keys[`OPENAI_API_KEY_${i}`] = `sk-test-bench-${String(i).padStart(4, '0')}`;
  const gatewayEnv: Record<string, string> = {
    // No .env from the working tree: the benchmark's configuration is all here.
    ENV_FILE: '/dev/null',
    PORT: String(gatewayPort),
    HOST: '127.0.0.1',
    JWT_SECRET: jwtSecret,
    REDIS_URL: redis.url,
    REDIS_PREFIX: 'keyrack-bench',
    LOG_LEVEL: 'warn',
    SHUTDOWN_GRACE_MS: '2000',
    // Every stream of the benchmark is one user's (one token).
    MAX_STREAMS_PER_USER: '1000000',
    OPENAI_BASE_URL: directBase,
    OPENAI_RPM_PER_KEY: '0',
    OPENAI_TPM_PER_KEY: '0',
    ...keys,
  };
  const gateway =
    options.gatewayRuntime === 'tsx'
      ? children.spawnTs('keyrack gateway', 'server/main.ts', {
          nodeArgs: [...(options.gatewayNodeArgs ?? []), '--import', './bench/probe/eventLoopProbe.ts'],
          env: gatewayEnv,
        })
      : await spawnCompiledGateway(children, options.gatewayNodeArgs ?? [], gatewayEnv);

  await Promise.all([waitForPort(mock, mockPort), waitForPort(bare, barePort), waitForPort(gateway, gatewayPort, 60_000)]);
  const token = await new TokenService(jwtSecret).mint({ sub: 'bench', role: 'user' }, '6h');

  return {
    redisUrl: redis.url,
    redisPort: redis.port,
    redisClusterUrl: cluster?.url,
    mockUrl,
    directBase,
    bareUrl: `http://127.0.0.1:${barePort}`,
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    gateway,
    bare,
    token,
    directKey,
    async configureMock(settings) {
      const res = await request(`${mockUrl}/_mock/config`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(settings),
      });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new Error(`mock config: HTTP ${res.statusCode}: ${text}`);
    },
    probeGateway: probeOf(gateway),
    probeBare: probeOf(bare),
  };
}

/** Builds the server bundle (and the probe, which is TypeScript too) and runs it as `npm start` does. */
async function spawnCompiledGateway(children: ChildProcesses, nodeArgs: string[], env: Record<string, string>): Promise<BenchChild> {
  const { mainFile, extraFiles } = await buildServer({ extraEntries: ['bench/probe/eventLoopProbe.ts'] });
  const probeFile = extraFiles[0]!;
  const start = startCommand();
  return children.spawnNode('keyrack gateway', mainFile, {
    nodeArgs: [...start.nodeFlags, ...nodeArgs, '--import', pathToFileURL(probeFile).href],
    env: { ...start.env, ...env },
  });
}

/**
 * Asks a process that preloads probe/eventLoopProbe.ts for its report (SIGUSR2) and reads the
 * marked line from its stdout.
 */
function probeOf(child: BenchChild): () => Promise<ProbeReport> {
  let waiter: ((report: ProbeReport) => void) | undefined;
  let buffered = '';
  child.process.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.startsWith(PROBE_MARKER) && waiter) {
        const resolve = waiter;
        waiter = undefined;
        resolve(JSON.parse(line.slice(PROBE_MARKER.length)) as ProbeReport);
      }
    }
  });
  return () => {
    if (waiter) return Promise.reject(new Error(`${child.name}: a probe is already pending`));
    return new Promise<ProbeReport>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiter = undefined;
        reject(new Error(`${child.name} did not answer the event-loop probe (SIGUSR2) within 5 s`));
      }, 5_000);
      waiter = (report) => {
        clearTimeout(timer);
        resolve(report);
      };
      child.process.kill('SIGUSR2');
    });
  };
}
