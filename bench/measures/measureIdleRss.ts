import { BenchReport, mib } from '../BenchReport';
import { TARGETS } from '../benchPlan';
import type { BenchStack } from '../BenchStack';
import { rssBytes } from '../ChildProcesses';

/** 6. RSS of the gateway process at rest: after start-up and one request on each path. */
export function measureIdleRss(stack: BenchStack, report: BenchReport, note: string): number {
  const rss = rssBytes(stack.gateway.pid);
  report.add({
    section: 6,
    measure: `Idle RSS of the gateway process (${note})`,
    keyrack: mib(rss),
    baseline: '',
    target: `<= ${mib(TARGETS.idleRssBytes)}`,
    met: rss <= TARGETS.idleRssBytes,
  });
  return rss;
}
