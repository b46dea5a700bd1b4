import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { forEachRedisTopology } from '../support/redisTopologies';

/**
 * Four gateway processes share one Redis and race 2,000 picks at three keys of 100 RPM each.
 * The Lua pick is atomic, so exactly 300 are granted and no key goes over its limit; on a
 * single Redis and on a Redis Cluster (issue 22: the pool's keys share the slot of {pool:<id>}).
 */

const WORKER = fileURLToPath(new URL('./fixtures/pickWorker.ts', import.meta.url));
const PROCESSES = 4;
const PICKS_PER_PROCESS = 500;

interface Summary {
  granted: Record<string, number>;
  refusals: { reason: string; retryAfterMs: number | null }[];
}

function startWorker(redisUrl: string, prefix: string): { child: ChildProcess; ready: Promise<void>; summary: Promise<Summary> } {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, redisUrl, prefix, String(PICKS_PER_PROCESS)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`worker exited (${code}) before reporting: ${stderr.slice(-2000)}`))),
  );
  exited.catch(() => {});
  const iterator = lines[Symbol.asyncIterator]();
  const next = async () => {
    const line = await Promise.race([iterator.next(), exited]);
    if (line.done) throw new Error(`worker closed its output: ${stderr.slice(-2000)}`);
    return line.value;
  };
  const ready = next().then((line) => expect(line).toBe('ready'));
  const summary = ready.then(async () => JSON.parse(await next()) as Summary);
  return { child, ready, summary };
}

forEachRedisTopology((topology) => {
it('issue 22: 4 processes, 2,000 picks, 3 keys at 100 RPM: exactly 300 granted, none over its limit', async () => {
  const prefix = `test-multiprocess-${randomUUID()}`;
  const workers = Array.from({ length: PROCESSES }, () => startWorker(topology.url(), prefix));
  try {
    await Promise.all(workers.map((w) => w.ready));
    for (const w of workers) w.child.stdin!.write('go\n');
    const summaries = await Promise.all(workers.map((w) => w.summary));

    const perKey: Record<string, number> = {};
    for (const s of summaries) for (const [fp, n] of Object.entries(s.granted)) perKey[fp] = (perKey[fp] ?? 0) + n;
    const refusals = summaries.flatMap((s) => s.refusals);

    expect(Object.values(perKey).reduce((a, b) => a + b, 0)).toBe(300);
    expect(Object.keys(perKey)).toHaveLength(3);
    for (const n of Object.values(perKey)) expect(n).toBe(100);
    expect(refusals).toHaveLength(PROCESSES * PICKS_PER_PROCESS - 300);
    for (const r of refusals) {
      expect(r.reason).toBe('busy');
      expect(r.retryAfterMs).toBeGreaterThan(0);
    }
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill();
  }
}, 60_000);
});
