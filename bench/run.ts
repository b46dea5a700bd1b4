import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startCommand } from '../scripts/buildServer';
import { BenchReport, mib } from './BenchReport';
import { FULL_PLAN, QUICK_PLAN, TARGETS, type BenchPlan } from './benchPlan';
import { startBenchStack, type BenchStack } from './BenchStack';
import { ChildProcesses, REPO_ROOT, rssBytes } from './ChildProcesses';
import { checkTarget, httpTargets } from './httpTargets';
import { measureIdleRss } from './measures/measureIdleRss';
import { measureManyStreams } from './measures/measureManyStreams';
import { measurePoolPicks } from './measures/measurePoolPicks';
import { measureAddedLatency, measureThroughput, warmUp } from './measures/measureRequestLoad';
import { measureTimeToFirstToken } from './measures/measureTimeToFirstToken';

/**
 * `npm run bench [-- --quick] [-- --no-write] [-- --only latency,streams] [-- --profile]`
 *
 * Issue #8: Keyrack's cost measured against a direct call and a bare pass-through proxy in
 * the same run, on loopback, every part its own process. Prints one table; a full run also
 * writes it to BENCHMARKS.md (the hand-written notes below the marker are kept).
 * `--profile` runs the gateway under `node --cpu-prof` (profiles land in $TMPDIR/keyrack-bench-profiles/).
 */

const SECTIONS = ['latency', 'throughput', 'ttft', 'streams', 'pool'] as const;
type Section = (typeof SECTIONS)[number];
const NOTES_MARKER = '<!-- notes: written by hand below this line; npm run bench keeps it -->';
const BENCHMARKS_FILE = join(REPO_ROOT, 'BENCHMARKS.md');

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      only: { type: 'string' },
      profile: { type: 'boolean', default: false },
    },
  });
  const plan: BenchPlan = values.quick ? QUICK_PLAN : FULL_PLAN;
  const only = values.only ? new Set(values.only.split(',').map((s) => s.trim())) : new Set<string>(SECTIONS);
  for (const s of only) if (!SECTIONS.includes(s as Section)) throw new Error(`--only: unknown section ${s} (${SECTIONS.join(', ')})`);
  const runs = (s: Section) => only.has(s);

  const startedAt = new Date();
  const load = loadavg();
  const report = new BenchReport();
  const children = new ChildProcesses();
  const interrupted = () => {
    process.stderr.write('\nbench: interrupted, stopping every process it started\n');
    void children.stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  process.once('exit', () => children.killAllNow());

  const profileDir = join(tmpdir(), 'keyrack-bench-profiles');
  if (values.profile) mkdirSync(profileDir, { recursive: true });
  const step = (text: string) => process.stderr.write(`bench [${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s]: ${text}\n`);

  let stack: BenchStack | undefined;
  try {
    step(`starting Redis${runs('pool') ? ' and a Redis Cluster (for 5)' : ''}, the mock provider, the bare proxy and the gateway`);
    stack = await startBenchStack(children, {
      gatewayNodeArgs: values.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
      redisCluster: runs('pool'),
    });
    const targets = httpTargets(stack);
    await checkTarget('direct', targets.direct);
    await checkTarget('bare proxy', targets.bare);
    await checkTarget('keyrack /v1', targets.keyrack);
    await measureIdleRss(stack, children, plan, report);

    if (runs('latency') || runs('throughput')) {
      step(`warming up (${plan.warmupS} s per target)`);
      await warmUp(targets, plan);
    }
    await section(report, 1, 'added latency', runs('latency'), step, () => measureAddedLatency(targets, plan, report));
    await section(report, 2, 'throughput', runs('throughput'), step, () => measureThroughput(targets, plan, report));
    const s = stack;
    await section(report, 3, 'time to first token', runs('ttft'), step, () => measureTimeToFirstToken(s, plan, report));
    await section(report, 4, 'many streams', runs('streams'), step, () => measureManyStreams(s, plan, report));
    await section(report, 5, 'pool picks', runs('pool'), step, () => measurePoolPicks(s, children, plan, report));
    report.add({
      section: 6,
      measure: 'RSS of the gateway process after the run (context)',
      keyrack: mib(rssBytes(stack.gateway.pid)),
      baseline: '',
      target: '',
      met: null,
    });
  } catch (error) {
    report.fail(0, 'setup', error);
    step(`setup failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    const gw = stack?.gateway.process;
    if (gw && (gw.exitCode !== null || gw.signalCode !== null)) {
      report.fail(0, 'gateway', new Error(`the gateway process died during the run (exit ${gw.exitCode ?? gw.signalCode})`));
      step(`the gateway died (exit ${gw.exitCode ?? gw.signalCode}); its last output:\n${stack?.gateway.output()}`);
    }
    step('stopping every process');
    // --cpu-prof writes its profile at exit: a 1,000-stream run's takes seconds to serialize.
    await children.stopAll(values.profile ? 60_000 : undefined);
  }

  const seconds = (Date.now() - startedAt.getTime()) / 1000;
  const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${mib(totalmem())} RAM, Node ${process.version}, ${process.platform}; load average at start ${load.map((l) => l.toFixed(2)).join(' / ')}`;
  const header = [`Date: ${startedAt.toISOString()}`, `Command: \`${command}\` (${seconds.toFixed(0)} s)`, `Machine: ${machine}`];

  process.stdout.write(`\n${header.join('\n').replace(/`/g, '')}\n\n${report.textTable()}\n\n`);
  process.stdout.write(`${report.missed === 0 ? 'every target met' : `${report.missed} row(s) missed their target`}\n`);

  const write = !values['no-write'] && !values.quick && only.size === SECTIONS.length;
  if (write) {
    writeFileSync(BENCHMARKS_FILE, benchmarksMarkdown(header, plan, report));
    step(`wrote ${BENCHMARKS_FILE}`);
  }
  // A missed target is a finding, not a failure; a measurement that could not run is.
  return report.errors.length === 0 ? 0 : 1;
}

async function section(
  report: BenchReport,
  number: number,
  name: string,
  enabled: boolean,
  step: (text: string) => void,
  run: () => Promise<void>,
): Promise<void> {
  if (!enabled) return;
  step(`${number}. ${name}`);
  try {
    await run();
  } catch (error) {
    report.fail(number, name, error);
    step(`${name} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** What `npm start` runs, as its script writes it. */
function startLine(): string {
  const { env, nodeFlags } = startCommand();
  return [...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'node', ...nodeFlags, 'dist/server/main.js'].join(' ');
}

function benchmarksMarkdown(header: string[], plan: BenchPlan, report: BenchReport): string {
  const previous = existsSync(BENCHMARKS_FILE) ? readFileSync(BENCHMARKS_FILE, 'utf8') : '';
  const at = previous.indexOf(NOTES_MARKER);
  const notes = at >= 0 ? previous.slice(at + NOTES_MARKER.length).replace(/^\n+/, '') : '## Notes\n\n(none yet)\n';
  return `# Keyrack benchmarks

Generated by \`npm run bench\` (bench/run.ts; issue #8). Everything above the notes marker is
rewritten by each full run.

${header.map((h) => `- ${h}`).join('\n')}

## Results

${report.markdownTable()}

## Setup

Every part is its own process on 127.0.0.1: \`redis-server\` (three more as a Redis Cluster for 5), the mock provider
(server/mock-provider/main.ts), the bare proxy (bench/bareProxyMain.ts: parse the JSON body,
forward it with a kept-alive undici pool, return the answer) and the gateway
(the bundle \`npm start\` runs: \`${startLine()}\`, built by scripts/buildServer.ts; Redis pool store, ${4} fake OpenAI keys with unlimited rpm/tpm,
LOG_LEVEL=warn, plus bench/probe/eventLoopProbe.ts preloaded to report event-loop delay).
The load generator runs in the benchmark's own process.

- Baselines: the same client, the same request, to the mock directly and through the bare proxy.
- 1, 2: \`POST /v1/chat/completions\` (non-streaming, model ${'`gpt-4o-mini`'}).
  Latency: ${plan.latency.overallRate} req/s paced evenly (one request every ${1000 / plan.latency.overallRate} ms, open loop, an undici Pool
  of up to ${plan.latency.connections} kept-alive connections; bench/httpLoad.ts runPaced) for ${plan.latency.durationS} s, time from handing
  the request to the pool to the end of the answer, into a microsecond histogram. Context row: the
  same rate as autocannon's \`overallRate\` sends it (each connection's share of a second back to
  back, i.e. bursts of ${plan.latency.connections} concurrent requests). Throughput: autocannon, ${plan.throughput.connections} connections,
  ${plan.throughput.rounds} rounds of ${plan.throughput.roundS} s per target, the order reversed every other round (direct, bare, keyrack,
  then keyrack, bare, direct) so that a box speeding up or slowing down weighs on all three alike.
  Targets are warmed up first (${plan.warmupS} s each at ${plan.throughput.connections} connections), and each latency run follows
  ${plan.warmupS} s of the same paced load on the same target (its steady state, not its return from ~40 s idle).
- 3: a small undici + eventsource-parser client, one stream at a time, ${plan.ttft.samples} per path,
  interleaved; the mock sends ${plan.ttft.chunks} chunks at once. Time to the first non-empty text delta,
  counted from the first request (for tRPC, as the SDK does it: \`POST /trpc/chat.start\`, whose
  answer carries the events the stream held by then, the first text usually, then the SSE
  \`GET /trpc/chat.stream?input=...\` as httpSubscriptionLink builds it, after the last of them).
- 4: ${plan.streams.count} streams opened at once, the mock pacing ${plan.streams.chunks} chunks ${plan.streams.chunkDelayMs} ms apart. Every answer
  is checked against the mock's deterministic text (each prompt is unique and echoed), delta count and
  tRPC event ids. RSS from /proc/<pid>/status (VmRSS) before, and its peak sampled every 100 ms during.
  Event-loop delay: \`monitorEventLoopDelay\` in the gateway (the preloaded probe), over the run.
  CPU per chunk: \`process.cpuUsage()\` in the same probe (user + kernel, every thread of the
  process) over the run, divided by the chunks sent; the bare proxy's the same way.
  The bare proxy (same probe) streams the same 1,000 answers as a baseline: the least a Node proxy
  does per event (one upstream read, one client write, no parsing).
- 5: bench/poolPicks.ts in its own process: KeyPool.acquire on the in-process store awaited one by one,
  and on the Redis store with ${plan.pool.redisInFlight} picks in flight on the gateway's pool connection (writes coalesced per turn of the event loop); ceiling:
  \`redis-benchmark -c 50 -n ${plan.pool.redisBenchmarkRequests} EVALSHA <sha of "return 1"> 0\` on the same Redis.
  Then the same picks on a local 3-master Redis Cluster (redis-server --cluster-enabled yes, 127.0.0.1, no
  replicas; test/support/redisCluster.ts), over the gateway's pool connection for a \`redis+cluster://\` URL:
  one pool (one hash slot, so one master), then one pool per master with the ${plan.pool.redisInFlight} in-flight picks shared among them.
- 6: VmRSS of the gateway right after the checks above (start-up plus one request per path),
  and again after ${plan.idleSettleMs / 1000} s more at rest, when V8's memory reducer has given unused heap back.
- Targets (2-core machine): added latency p50 <= ${TARGETS.addedLatencyP50Ms} ms, p99 <= ${TARGETS.addedLatencyP99Ms} ms; throughput >= ${TARGETS.throughputVsBare * 100}% of the bare proxy;
  added TTFT p50 <= ${TARGETS.addedTtftP50Ms} ms; 1,000 streams complete with 0 lost/duplicated chunks, <= 64 KiB RSS per
  stream, event-loop p99 <= ${TARGETS.eventLoopP99Ms} ms; picks >= 1,000,000/s in-process, >= ${TARGETS.redisPicksVsCeiling * 100}% of redis-benchmark on Redis
  and >= ${TARGETS.clusterPicksVsSingleNode * 100}% of that on the Redis Cluster;
  idle RSS <= 100 MB (read as 10^8 bytes = 95.4 MiB).

${NOTES_MARKER}

${notes}`;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
