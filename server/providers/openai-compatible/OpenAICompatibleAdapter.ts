import type { FinishReason, TokenUsage } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { addText, emitEach, emitTexts, type ChunkTexts } from '../emitEach';
import { safeParseValue } from '../http/parseJson';
import { readSseEvents } from '../http/sseEvents';
import { testKeyRequest } from '../http/testKeyRequest';
import { firstByteLimit, readAnswerBody, readErrorBody, type UpstreamHttp } from '../http/UpstreamHttp';
import type { ProviderSpec } from '../registry';
import type { AdapterContext, AdapterEvent, AdapterSink, KeyTestResult, ProviderAdapter, UpstreamRequest } from '../types';
import { classifyOpenAIError, classifyOpenAIStreamError } from './classifyOpenAIError';
import { convertOpenAIUsage } from './convertOpenAIUsage';
import { convertToOpenAIChatRequest } from './convertToOpenAIChatRequest';
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
    if (req.delivery === 'whole') return emitEach(this.readWhole(await readAnswerBody(response, ctx.apiKey), ctx.apiKey), emit);

    const state: ChunkState = { finishReason: undefined, usage: undefined, done: false };
    await readSseEvents(
      response.body,
      ctx.apiKey,
      (data) => {
        return emitTexts(this.readEvent(data, state, ctx.apiKey), emit);
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

  /** One SSE event's data: returns its texts, puts finish reason and usage into `state`. Throws ProviderError. */
  private readEvent(data: string, state: ChunkState, apiKey: string): ChunkTexts {
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
    let texts: ChunkTexts;
    for (const choice of chunk.choices ?? []) {
      const text = choice.delta?.content;
      if (text) texts = addText(texts, text);
      if (choice.finish_reason) state.finishReason = mapOpenAIFinishReason(choice.finish_reason);
    }
    return texts;
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
    const text = choice.message?.content;
    if (text) events.push({ type: 'delta', text });
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
}
