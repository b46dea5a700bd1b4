import { request } from 'undici';
import type { BenchStack } from './BenchStack';
import type { HttpTarget } from './httpLoad';

/** The same non-streaming chat request, three ways: to the mock, through the bare proxy, through Keyrack. */
export interface HttpTargets {
  direct: HttpTarget;
  bare: HttpTarget;
  keyrack: HttpTarget;
}

/** A catalog model Keyrack routes to its OpenAI pool; the mock answers any model name. */
export const BENCH_MODEL = 'gpt-4o-mini';

export function chatBody(prompt: string, stream = false): string {
  return JSON.stringify({ model: BENCH_MODEL, messages: [{ role: 'user', content: prompt }], ...(stream ? { stream: true } : {}) });
}

export function httpTargets(stack: BenchStack): HttpTargets {
  const body = chatBody('Hello from the Keyrack benchmark');
  const json = { 'content-type': 'application/json' };
  return {
    direct: { url: `${stack.directBase}/chat/completions`, headers: { ...json, authorization: `Bearer ${stack.directKey}` }, body },
    bare: { url: `${stack.bareUrl}/v1/chat/completions`, headers: json, body },
    keyrack: { url: `${stack.gatewayUrl}/v1/chat/completions`, headers: { ...json, authorization: `Bearer ${stack.token}` }, body },
  };
}

/** One request before any load: a target that answers wrongly fails here, with its answer. */
export async function checkTarget(name: string, target: HttpTarget): Promise<void> {
  const res = await request(target.url, { method: 'POST', headers: target.headers, body: target.body });
  const text = await res.body.text();
  let content: unknown;
  try {
    content = (JSON.parse(text) as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message?.content;
  } catch {
    content = undefined;
  }
  if (res.statusCode !== 200 || typeof content !== 'string' || !content) {
    throw new Error(`${name}: expected 200 with a chat completion, got HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
  }
}
