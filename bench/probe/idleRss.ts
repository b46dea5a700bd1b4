import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mib } from '../BenchReport';
import { startBenchStack } from '../BenchStack';
import { ChildProcesses, rssBytes } from '../ChildProcesses';
import { checkTarget, httpTargets } from '../httpTargets';

/**
 * `npx tsx bench/probe/idleRss.ts [--runtime compiled|tsx] [--heap-snapshot]`: target 6 alone,
 * in seconds instead of a whole bench run. Starts the bench stack, sends the one request the
 * bench sends before it measures idle RSS, and prints the gateway's RSS with its V8 breakdown.
 * `--heap-snapshot` also writes a heap snapshot of the idle gateway (to $TMPDIR), to open in
 * Chrome DevTools' Memory tab.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runtime: { type: 'string', default: 'compiled' },
      'heap-snapshot': { type: 'boolean', default: false },
    },
  });
  const runtime = values.runtime === 'tsx' ? 'tsx' : 'compiled';
  const snapshotDir = join(tmpdir(), 'keyrack-idle-heap');
  if (values['heap-snapshot']) mkdirSync(snapshotDir, { recursive: true });
  const children = new ChildProcesses();
  process.once('exit', () => children.killAllNow());
  try {
    const stack = await startBenchStack(children, {
      gatewayRuntime: runtime,
      gatewayNodeArgs: values['heap-snapshot'] ? ['--heapsnapshot-signal=SIGUSR1', `--diagnostic-dir=${snapshotDir}`] : [],
    });
    await checkTarget('keyrack /v1', httpTargets(stack).keyrack);
    // The same settling time as bench/measures/measureIdleRss.ts.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const rss = rssBytes(stack.gateway.pid);
    const probe = await stack.probeGateway();
    const line = {
      runtime,
      rss: mib(rss),
      heapUsed: mib(probe.heapUsedBytes),
      heapTotal: mib(probe.heapTotalBytes),
      external: mib(probe.externalBytes),
      arrayBuffers: mib(probe.arrayBuffersBytes),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    if (values['heap-snapshot']) {
      stack.gateway.process.kill('SIGUSR1');
      // Writing a snapshot takes a few seconds; the gateway is stopped after.
      await new Promise((resolve) => setTimeout(resolve, 8_000));
      process.stdout.write(`heap snapshot in ${snapshotDir}\n`);
    }
  } finally {
    await children.stopAll();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
