import { BenchReport, ms } from '../BenchReport';
import { TARGETS, type BenchPlan } from '../benchPlan';
import type { BenchStack } from '../BenchStack';
import { chatBody } from '../httpTargets';
import { createBenchAgent, openAiStream, trpcStream, type StreamResult } from '../streamClient';

/**
 * 3. Time to first token, streaming: direct to the mock, through Keyrack's /v1 and through
 * chat.start + chat.stream (tRPC SSE). One request at a time, the three paths interleaved so
 * background noise falls on all of them alike. The mock sends its whole answer at once.
 */
export async function measureTimeToFirstToken(stack: BenchStack, plan: BenchPlan, report: BenchReport): Promise<void> {
  const { samples, chunks } = plan.ttft;
  await stack.configureMock({ chunkDelayMs: 0, chunkCount: chunks });
  const agent = createBenchAgent(16);
  const prompt = 'Time to first token';
  const body = chatBody(prompt, true);
  const paths: Record<'direct' | 'v1' | 'trpc', () => Promise<StreamResult>> = {
    direct: () => openAiStream(agent, `${stack.directBase}/chat/completions`, { authorization: `Bearer ${stack.directKey}` }, body),
    v1: () => openAiStream(agent, `${stack.gatewayUrl}/v1/chat/completions`, { authorization: `Bearer ${stack.token}` }, body),
    trpc: () => trpcStream(agent, { trpcUrl: `${stack.gatewayUrl}/trpc`, token: stack.token }, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] }),
  };
  const times = { direct: [] as number[], v1: [] as number[], trpc: [] as number[] };
  try {
    const warm = Math.max(3, Math.round(samples / 10));
    for (let i = 0; i < warm + samples; i += 1) {
      for (const name of ['direct', 'v1', 'trpc'] as const) {
        const result = await paths[name]();
        if (result.deltas !== chunks) throw new Error(`${name}: ${result.deltas} deltas, expected ${chunks}`);
        if (i >= warm) times[name].push(result.ttftMs);
      }
    }
  } finally {
    await agent.close();
    await stack.configureMock({ chunkCount: null });
  }
  const direct = quantiles(times.direct);
  for (const [name, label] of [
    ['trpc', 'chat.start + chat.stream (tRPC SSE)'],
    ['v1', '/v1 streaming'],
  ] as const) {
    const q = quantiles(times[name]);
    const added = q.p50 - direct.p50;
    report.add({
      section: 3,
      measure: `Added time to first token p50, ${label} (${samples} sequential)`,
      keyrack: `+${ms(added)} (p50 ${ms(q.p50)}, p99 ${ms(q.p99)})`,
      baseline: `direct p50 ${ms(direct.p50)}, p99 ${ms(direct.p99)}`,
      target: `<= ${TARGETS.addedTtftP50Ms} ms`,
      met: added <= TARGETS.addedTtftP50Ms,
    });
  }
}

export function quantiles(values: number[]): { p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99) };
}
