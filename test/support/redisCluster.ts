import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from '../ops/waitFor';
import { assertRedisServerInstalled, freePort } from './redisServer';

/**
 * A throwaway local Redis Cluster (issue 22): 3 masters, no replicas, on free loopback ports,
 * config files in a temporary directory. For tests and the benchmark.
 */
export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3` (what REDIS_URL takes). */
  url: string;
  ports: number[];
  processes: ChildProcess[];
  /** Stop every node and remove the config files. */
  stop(): Promise<void>;
}

export const REDIS_CLUSTER_INSTALL_HINT =
  'redis-cli was not found on PATH. The Redis Cluster tests need redis-server and redis-cli: install them with `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis`, or set REDIS_CLUSTER_URL to a cluster the tests may use.';

/** Longest wait for the cluster to say cluster_state:ok. */
const READY_WITHIN_MS = 20_000;

function startNode(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--loglevel', 'notice'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.resume();
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`redis-server (cluster node ${port}) exited early (code ${code}): ${output.slice(-500)}`)));
  });
}

/** Resolves once every node reports cluster_state:ok (waitFor's short polls, bounded). */
async function clusterReady(ports: number[]): Promise<void> {
  const clients = ports.map((port) => new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 }));
  try {
    await waitFor(
      async () => (await Promise.all(clients.map((c) => (c.cluster('INFO') as Promise<string>).catch(() => '')))).every((info) => info.includes('cluster_state:ok')),
      'the local Redis Cluster to reach cluster_state:ok',
      READY_WITHIN_MS,
    );
  } finally {
    for (const c of clients) c.disconnect();
  }
}

export async function startRedisCluster(): Promise<RedisCluster> {
  assertRedisServerInstalled();
  const probe = spawnSync('redis-cli', ['--version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) throw new Error(REDIS_CLUSTER_INSTALL_HINT);
  const dir = mkdtempSync(join(tmpdir(), 'keyrack-cluster-'));
  const ports: number[] = [];
  while (ports.length < 3) {
    const port = await freePort();
    // The cluster bus listens on port + 10000: both must be free.
    if (port <= 55_535 && !ports.includes(port)) ports.push(port);
  }
  const processes: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      processes.map((child) => {
        if (child.exitCode !== null || child.signalCode !== null) return undefined;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        return exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    processes.push(...(await Promise.all(ports.map((port) => startNode(port, dir)))));
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: READY_WITHIN_MS });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${(create.stdout + create.stderr).slice(-800)}`);
    await clusterReady(ports);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, ports, processes, stop };
}
