import { once } from 'node:events';
import { BenchReport, mib } from '../BenchReport';
import { TARGETS, type BenchPlan } from '../benchPlan';
import type { BenchStack } from '../BenchStack';
import { rssBytes, type BenchChild, type ChildProcesses } from '../ChildProcesses';

/**
 * 6. RSS of the gateway process at rest: after start-up and one request on each path, and again
 * after `plan.idleSettleMs` more at rest. The gateway runs as `npm start` runs it: the esbuild
 * bundle under plain node (bench/BenchStack.ts). An empty script under plain node is the floor
 * any Node process pays; one under tsx shows what running from source would add (tsx's loader
 * keeps its own worker thread and isolate).
 *
 * Why two readings: right after start-up V8 still holds the heap it grew while loading and
 * serving (heapTotal ~53 MiB for ~27 MiB used); once the process has been idle for a few seconds
 * its memory reducer gives the unused part back. The first reading is what a freshly started
 * gateway costs, the second what an idle one costs for as long as it stays idle.
 */
export async function measureIdleRss(stack: BenchStack, children: ChildProcesses, plan: BenchPlan, report: BenchReport): Promise<void> {
  const rss = rssBytes(stack.gateway.pid);
  const underTsx = await idleRss(children.spawnTs('idle under tsx', 'bench/probe/idleProcess.ts', { env: {} }));
  const plain = await idleRss(children.spawnProgram('idle plain node', process.execPath, ['-e', "process.stdout.write('idle\\n'); setInterval(() => {}, 60000)"]));
  report.add({
    section: 6,
    measure: 'Idle RSS of the gateway process (node dist/server/main.js as npm start runs it, after start-up and one request)',
    keyrack: `${mib(rss)}; ${mib(rss - plain)} above an empty node process`,
    baseline: `empty script: ${mib(plain)} plain node, ${mib(underTsx)} under tsx`,
    target: `<= 100 MB (${mib(TARGETS.idleRssBytes)})`,
    met: rss <= TARGETS.idleRssBytes,
  });
  await new Promise((resolve) => setTimeout(resolve, plan.idleSettleMs));
  const settled = rssBytes(stack.gateway.pid);
  report.add({
    section: 6,
    measure: `Idle RSS of the gateway process after ${(plan.idleSettleMs / 1000).toFixed(1)} s more at rest`,
    keyrack: `${mib(settled)}; ${mib(settled - plain)} above an empty node process`,
    baseline: '',
    target: `<= 100 MB (${mib(TARGETS.idleRssBytes)})`,
    met: settled <= TARGETS.idleRssBytes,
  });
}

async function idleRss(child: BenchChild): Promise<number> {
  if (!child.output().includes('idle')) await once(child.process.stdout!, 'data');
  // Let start-up garbage settle the same way for both.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const rss = rssBytes(child.pid);
  await child.stop();
  return rss;
}
