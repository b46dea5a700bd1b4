import { setMaxListeners } from 'node:events';
import { BenchReport, kib, ms } from '../BenchReport';
import { TARGETS, type BenchPlan } from '../benchPlan';
import type { BenchStack } from '../BenchStack';
import { rssBytes } from '../ChildProcesses';
import { chatBody } from '../httpTargets';
import { createBenchAgent, expectedAnswer, openAiStream, trpcStream, type StreamResult } from '../streamClient';

type Path = 'direct' | 'bare' | 'v1' | 'trpc';

interface StreamsOutcome {
  complete: number;
  /** Streams whose text or delta count was wrong, or whose event ids jumped or repeated. */
  damaged: number;
  failed: number;
  firstError: string | undefined;
  lostOrDuplicated: number;
  peakRssBytes: number;
  rssBeforeBytes: number;
  eventLoopP99Ms: number;
  eventLoopMaxMs: number;
  /** CPU time (user + kernel) of the process in the middle per chunk sent, in microseconds. */
  cpuPerChunkUs: number;
  /** The kernel's share of it (socket reads and writes, mostly). */
  systemPerChunkUs: number;
  seconds: number;
}

/**
 * 4. Many concurrent streams, the mock pacing each so they all overlap: every answer must
 * arrive whole (each delta once, in order), and the gateway's RSS growth per open stream and
 * event-loop delay are read while they run. The mock directly first (the check that the client
 * and the mock themselves keep up), then the bare proxy (the same figures for the least a Node
 * proxy does per event: one upstream read and one client write), then Keyrack's two paths.
 */
export async function measureManyStreams(stack: BenchStack, plan: BenchPlan, report: BenchReport): Promise<void> {
  const { count, chunks, chunkDelayMs } = plan.streams;
  await stack.configureMock({ chunkDelayMs, chunkCount: chunks });
  try {
    const direct = await runStreams(stack, 'direct', plan);
    const bare = await runStreams(stack, 'bare', plan);
    const barePerStream = (bare.peakRssBytes - bare.rssBeforeBytes) / count;
    // /v1 first: the second run starts from whatever heap the first one grew, which makes its
    // RSS-per-stream figure look smaller than it is.
    for (const [path, label] of [
      ['v1', '/v1 streaming'],
      ['trpc', 'chat.stream (tRPC SSE)'],
    ] as const) {
      const o = await runStreams(stack, path, plan);
      const what = `${count} concurrent streams x ${chunks} chunks every ${chunkDelayMs} ms, ${label}`;
      const directNote =
        `direct: ${direct.complete}/${count} complete, ${direct.lostOrDuplicated} lost/dup, ${direct.seconds.toFixed(1)} s; ` +
        `bare proxy: ${bare.complete}/${count}, ${bare.lostOrDuplicated} lost/dup, ${bare.seconds.toFixed(1)} s`;
      report.add({
        section: 4,
        measure: `${what}: complete, chunks lost or duplicated`,
        keyrack: `${o.complete}/${count} complete, ${o.lostOrDuplicated} lost/dup, ${o.failed} failed in ${o.seconds.toFixed(1)} s${o.firstError ? ` (${o.firstError})` : ''}`,
        baseline: directNote,
        target: '100%, 0',
        met: o.complete === count && o.lostOrDuplicated === 0,
      });
      const perStream = (o.peakRssBytes - o.rssBeforeBytes) / count;
      report.add({
        section: 4,
        measure: `${what}: gateway RSS per open stream`,
        keyrack: `${kib(perStream)} (RSS ${kib(o.rssBeforeBytes)} -> peak ${kib(o.peakRssBytes)})`,
        baseline: `bare proxy ${kib(barePerStream)}`,
        target: `<= ${kib(TARGETS.rssPerStreamBytes)}`,
        met: perStream <= TARGETS.rssPerStreamBytes,
      });
      report.add({
        section: 4,
        measure: `${what}: gateway event-loop delay p99`,
        keyrack: `${ms(o.eventLoopP99Ms)} (max ${ms(o.eventLoopMaxMs)})`,
        baseline: `bare proxy ${ms(bare.eventLoopP99Ms)} (max ${ms(bare.eventLoopMaxMs)})`,
        target: `<= ${TARGETS.eventLoopP99Ms} ms`,
        met: o.eventLoopP99Ms <= TARGETS.eventLoopP99Ms,
      });
      // Context for the event-loop row, and steadier than it: the busier the gateway is per
      // chunk, the further its loop falls behind the 20,000 chunks a second (BENCHMARKS.md).
      report.add({
        section: 4,
        measure: `${what}: gateway CPU per chunk (user + kernel, over the run)`,
        keyrack: `${o.cpuPerChunkUs.toFixed(1)} us (kernel ${o.systemPerChunkUs.toFixed(1)} us) = ${(o.cpuPerChunkUs / bare.cpuPerChunkUs).toFixed(1)}x the bare proxy`,
        baseline: `bare proxy ${bare.cpuPerChunkUs.toFixed(1)} us (kernel ${bare.systemPerChunkUs.toFixed(1)} us)`,
        target: '',
        met: null,
      });
    }
  } finally {
    await stack.configureMock({ chunkDelayMs: 0, chunkCount: null });
  }
}

async function runStreams(stack: BenchStack, path: Path, plan: BenchPlan): Promise<StreamsOutcome> {
  const { count, chunks } = plan.streams;
  const agent = createBenchAgent(count + 64);
  // The process in the middle: the bare proxy, or the gateway (for direct its figures are unused).
  const pid = path === 'bare' ? stack.bare.pid : stack.gateway.pid;
  const probe = path === 'bare' ? stack.probeBare : stack.probeGateway;
  const rssBeforeBytes = rssBytes(pid);
  await probe(); // starts a fresh event-loop interval
  let peakRssBytes = rssBeforeBytes;
  const sampler = setInterval(() => {
    peakRssBytes = Math.max(peakRssBytes, rssBytes(pid));
  }, 100);
  const started = performance.now();
  // Streams that have not finished long after the mock's pace says they should are failures.
  const signal = AbortSignal.timeout(2 * chunks * plan.streams.chunkDelayMs + 20_000);
  setMaxListeners(0, signal); // one signal for every stream
  const run = (i: number): Promise<StreamResult> => {
    // Each prompt is unique and echoed back: a delta from another stream would show.
    const prompt = `stream ${i} of the many streams benchmark`;
    switch (path) {
      case 'direct':
        return openAiStream(agent, `${stack.directBase}/chat/completions`, { authorization: `Bearer ${stack.directKey}` }, chatBody(prompt, true), signal);
      case 'bare':
        return openAiStream(agent, `${stack.bareUrl}/v1/chat/completions`, {}, chatBody(prompt, true), signal);
      case 'v1':
        return openAiStream(agent, `${stack.gatewayUrl}/v1/chat/completions`, { authorization: `Bearer ${stack.token}` }, chatBody(prompt, true), signal);
      case 'trpc':
        return trpcStream(agent, { trpcUrl: `${stack.gatewayUrl}/trpc`, token: stack.token }, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] }, signal);
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: count }, (_, i) => run(i)));
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  peakRssBytes = Math.max(peakRssBytes, rssBytes(pid));
  const loop = await probe();
  await agent.close();

  const outcome: StreamsOutcome = {
    complete: 0,
    damaged: 0,
    failed: 0,
    firstError: undefined,
    lostOrDuplicated: 0,
    peakRssBytes,
    rssBeforeBytes,
    eventLoopP99Ms: loop.p99Ms,
    eventLoopMaxMs: loop.maxMs,
    cpuPerChunkUs: ((loop.cpuUserMs + loop.cpuSystemMs) * 1e3) / (count * chunks),
    systemPerChunkUs: (loop.cpuSystemMs * 1e3) / (count * chunks),
    seconds,
  };
  settled.forEach((s, i) => {
    if (s.status === 'rejected') {
      outcome.failed += 1;
      outcome.firstError ??= String(s.reason instanceof Error ? s.reason.message : s.reason).slice(0, 120);
      return;
    }
    const r = s.value;
    const expected = expectedAnswer(`stream ${i} of the many streams benchmark`, chunks);
    const intact = r.text === expected && r.deltas === chunks && r.idProblems === 0;
    outcome.lostOrDuplicated += Math.abs(chunks - r.deltas) + r.idProblems + (r.deltas === chunks && r.text !== expected ? 1 : 0);
    if (intact && r.finished) outcome.complete += 1;
    else outcome.damaged += 1;
  });
  return outcome;
}
