import { randomUUID } from 'node:crypto';
import { MAX_TOOL_CALLS, type FinishReason, type TokenUsage } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { emitEach } from '../emitEach';
import { safeParseValue } from '../http/parseJson';
import { readSseEvents } from '../http/sseEvents';
import { testKeyRequest } from '../http/testKeyRequest';
import { firstByteLimit, headerReader, readAnswerBody, readErrorBody, type UpstreamHttp } from '../http/UpstreamHttp';
import type { ProviderSpec } from '../registry';
import type { AdapterContext, AdapterEvent, AdapterSink, KeyTestResult, ProviderAdapter, UpstreamRequest } from '../types';
import { classifyOpenAIError, classifyOpenAIStreamError } from './classifyOpenAIError';
import { convertOpenAIUsage } from './convertOpenAIUsage';
import { convertToOpenAIChatRequest } from './convertToOpenAIChatRequest';
import { readOpenAICompatibleLimits } from './openAIRateLimits';
import { mapOpenAIFinishReason } from './mapOpenAIFinishReason';
import { openaiChunkSchema, openaiCompletionSchema } from './openaiChatApi';
import { plainAnswer, plainDeltaChunk } from './plainShapes';

/** Speaks Chat Completions for every provider that copies OpenAI's format; quirks come from the spec. */
export class OpenAICompatibleAdapter implements ProviderAdapter {
  constructor(
    private readonly spec: ProviderSpec,
    private readonly http: UpstreamHttp,
  ) {}

  async run(req: UpstreamRequest, ctx: AdapterContext, emit: AdapterSink): Promise<void> {
    const now = ctx.now ?? Date.now;
    const response = await this.http.fetch(`${ctx.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ctx.apiKey}`,
        'content-type': 'application/json',
        accept: req.delivery === 'whole' ? 'application/json' : 'text/event-stream',
      },
      body: JSON.stringify(convertToOpenAIChatRequest(req, this.spec)),
      signal: ctx.signal,
      apiKey: ctx.apiKey,
      ...firstByteLimit(req, ctx),
    });
    if (!response.ok || !response.body) {
      const bodyText = await readErrorBody(response);
      throw classifyOpenAIError({ spec: this.spec, status: response.status, headers: response.headers, bodyText, apiKey: ctx.apiKey, now: now() });
    }
    if (ctx.onLimits) {
      const limits = readOpenAICompatibleLimits(this.spec, headerReader(response), now());
      if (limits) ctx.onLimits(limits);
    }
    if (req.delivery === 'whole') return emitEach(this.readWhole(await readAnswerBody(response, ctx.apiKey), ctx.apiKey), emit);

    const state: ChunkState = { finishReason: undefined, usage: undefined, done: false, toolCalls: undefined };
    await readSseEvents(
      response.body,
      ctx.apiKey,
      (data) => {
        const read = this.readEvent(data, state, ctx.apiKey);
        if (read === undefined) return undefined;
        return typeof read === 'string' ? emit({ type: 'delta', text: read }) : emitEach(read, emit);
      },
      () => state.done,
    );
    const { finishReason, usage } = state;
    // A stream that ends without [DONE] or a finish reason was cut, not finished.
    if (!state.done && finishReason === undefined) {
      throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: stream ended before the answer was complete`, providerCode: 'truncated' });
    }
    if (usage) {
      const wait = emit({ type: 'usage', usage });
      if (wait) await wait;
    }
    await emit({ type: 'done', finishReason: finishReason ?? 'stop' });
  }

  /**
   * One SSE event's data: its text (the common chunk) or its events (anything else), finish
   * reason and usage into `state`. Throws ProviderError.
   */
  private readEvent(data: string, state: ChunkState, apiKey: string): string | AdapterEvent[] | undefined {
    if (data === '[DONE]' || (data.charCodeAt(0) !== 123 /* { */ && data.trim() === '[DONE]')) {
      state.done = true;
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(data);
    } catch {
      throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: unreadable stream chunk (not JSON)` });
    }
    // Nearly every chunk is one choice with a text delta: read it with typeof checks alone.
    const plain = plainDeltaChunk(raw);
    if (plain) {
      if (plain.finish_reason) state.finishReason = mapOpenAIFinishReason(plain.finish_reason);
      return plain.delta?.content || undefined;
    }
    const parsed = safeParseValue(raw, openaiChunkSchema);
    if (!parsed.success) {
      throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: unreadable stream chunk (${parsed.error})` });
    }
    const chunk = parsed.value;
    if (chunk.error) throw classifyOpenAIStreamError(this.spec, chunk.error, apiKey);
    // Usage arrives in one of three places depending on the provider; Perplexity repeats it
    // cumulatively, so the last one seen wins.
    const reported = chunk.usage ?? chunk.x_groq?.usage ?? chunk.choices?.find((c) => c.usage)?.usage;
    if (reported) state.usage = convertOpenAIUsage(reported);
    const events: AdapterEvent[] = [];
    for (const choice of chunk.choices ?? []) {
      const delta = choice.delta;
      const reasoning = delta?.reasoning_content ?? delta?.reasoning;
      if (reasoning) events.push({ type: 'reasoning', text: reasoning });
      if (delta?.content) events.push({ type: 'delta', text: delta.content });
      for (const call of delta?.tool_calls ?? []) {
        state.toolCalls ??= new Set();
        // Without an index (servers that send each call whole): a fragment naming a call begins the next one.
        const index = call.index ?? (call.id || call.function?.name ? state.toolCalls.size : Math.max(0, state.toolCalls.size - 1));
        if (index > MAX_TOOL_CALLS) throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: a tool call index past ${MAX_TOOL_CALLS}` });
        const first = !state.toolCalls.has(index);
        state.toolCalls.add(index);
        events.push({
          type: 'tool_call_delta',
          index,
          // A call's first fragment names it; a server that sends no id gets one (a tool result must answer it).
          ...(first ? { id: call.id || callId(), name: call.function?.name ?? '' } : call.function?.name ? { name: call.function.name } : {}),
          argumentsDelta: call.function?.arguments ?? '',
        });
      }
      if (choice.finish_reason) state.finishReason = mapOpenAIFinishReason(choice.finish_reason);
    }
    return events.length > 0 ? events : undefined;
  }

  /** A one-piece answer as the same events a stream gives: its text, usage, done. Throws ProviderError. */
  private readWhole(bodyText: string, apiKey: string): AdapterEvent[] {
    let raw: unknown;
    try {
      raw = JSON.parse(bodyText);
    } catch {
      throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: unreadable answer (not JSON)` });
    }
    let answer = plainAnswer(raw);
    if (!answer) {
      const parsed = safeParseValue(raw, openaiCompletionSchema);
      if (!parsed.success) throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: unreadable answer (${parsed.error})` });
      answer = parsed.value;
    }
    if (answer.error) throw classifyOpenAIStreamError(this.spec, answer.error, apiKey);
    const choice = answer.choices?.[0];
    if (!choice) throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: answer without a choice`, providerCode: 'truncated' });
    const events: AdapterEvent[] = [];
    const message = choice.message;
    const reasoning = message?.reasoning_content ?? message?.reasoning;
    if (reasoning) events.push({ type: 'reasoning', text: reasoning });
    const text = message?.content;
    if (text) events.push({ type: 'delta', text });
    for (const [index, call] of (message?.tool_calls ?? []).slice(0, MAX_TOOL_CALLS).entries()) {
      events.push({ type: 'tool_call_delta', index, id: call.id || callId(), name: call.function.name, argumentsDelta: call.function.arguments ?? '' });
    }
    const reported = answer.usage ?? answer.x_groq?.usage ?? choice.usage;
    if (reported) events.push({ type: 'usage', usage: convertOpenAIUsage(reported) });
    events.push({ type: 'done', finishReason: choice.finish_reason ? mapOpenAIFinishReason(choice.finish_reason) : 'stop' });
    return events;
  }

  testKey(ctx: AdapterContext): Promise<KeyTestResult> {
    const test = this.spec.keyTest;
    return testKeyRequest(this.http, {
      url: ctx.baseUrl + test.path,
      method: test.method,
      headers: { authorization: `Bearer ${ctx.apiKey}`, 'content-type': 'application/json' },
      ...(test.method === 'POST' ? { body: test.body, acceptedStatuses: [400, 422] } : {}),
      apiKey: ctx.apiKey,
      signal: ctx.signal,
      ...(this.spec.rejectedKeyMessage ? { rejectedMessage: this.spec.rejectedKeyMessage } : {}),
    });
  }
}

interface ChunkState {
  finishReason: FinishReason | undefined;
  usage: TokenUsage | undefined;
  /** [DONE] was read. */
  done: boolean;
  /** Indexes of the tool calls begun so far (made at the first). */
  toolCalls: Set<number> | undefined;
}

/** An id for a tool call a server sent without one, in OpenAI's form. */
function callId(): string {
  return `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`;
}
