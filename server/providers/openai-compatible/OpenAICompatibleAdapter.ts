import type { FinishReason, TokenUsage } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { safeParseJson, safeParseValue } from '../http/parseJson';
import { upstreamBody } from '../http/upstreamBody';
import { createSseReader } from '../http/sseEvents';
import { testKeyRequest } from '../http/testKeyRequest';
import { networkError, readAnswerBody, readErrorBody, type UpstreamHttp } from '../http/UpstreamHttp';
import type { ProviderSpec } from '../registry';
import type { AdapterContext, AdapterEvent, KeyTestResult, ProviderAdapter, UpstreamRequest } from '../types';
import { classifyOpenAIError, classifyOpenAIStreamError } from './classifyOpenAIError';
import { convertOpenAIUsage } from './convertOpenAIUsage';
import { convertToOpenAIChatRequest } from './convertToOpenAIChatRequest';
import { mapOpenAIFinishReason } from './mapOpenAIFinishReason';
import { openaiChunkSchema, openaiCompletionSchema } from './openaiChatApi';

/** Speaks Chat Completions for every provider that copies OpenAI's format; quirks come from the spec. */
export class OpenAICompatibleAdapter implements ProviderAdapter {
  constructor(
    private readonly spec: ProviderSpec,
    private readonly http: UpstreamHttp,
  ) {}

  async *stream(req: UpstreamRequest, ctx: AdapterContext): AsyncGenerator<AdapterEvent> {
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
    });
    if (!response.ok || !response.body) {
      const bodyText = await readErrorBody(response);
      throw classifyOpenAIError({ spec: this.spec, status: response.status, headers: response.headers, bodyText, apiKey: ctx.apiKey, now: now() });
    }
    if (req.delivery === 'whole') {
      yield* this.readWhole(await readAnswerBody(response, ctx.apiKey), ctx.apiKey);
      return;
    }

    const state: ChunkState = { finishReason: undefined, usage: undefined, done: false };
    /** Texts of the event being read; reused, so a plain chunk allocates nothing here. */
    const texts: string[] = [];
    const sse = createSseReader();
    const body = upstreamBody(response.body);
    try {
      // The body is read here rather than through sseEvents: one async generator level less per chunk.
      reading: for await (const bytes of body.chunks) {
        for (const event of sse.feed(bytes)) {
          this.readEvent(event.data, state, texts, ctx.apiKey);
          for (const text of texts) yield { type: 'delta', text };
          if (state.done) break reading;
        }
      }
      if (!state.done) {
        for (const event of sse.end()) {
          this.readEvent(event.data, state, texts, ctx.apiKey);
          for (const text of texts) yield { type: 'delta', text };
          if (state.done) break;
        }
      }
    } catch (error) {
      throw networkError(error, ctx.apiKey);
    } finally {
      body.release(state.done);
    }
    const { finishReason, usage } = state;
    const sawDone = state.done;
    // A stream that ends without [DONE] or a finish reason was cut, not finished.
    if (!sawDone && finishReason === undefined) {
      throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: stream ended before the answer was complete`, providerCode: 'truncated' });
    }
    if (usage) yield { type: 'usage', usage };
    yield { type: 'done', finishReason: finishReason ?? 'stop' };
  }

  /** One SSE event's data: its texts into `texts` (emptied first), finish reason and usage into `state`. Throws ProviderError. */
  private readEvent(data: string, state: ChunkState, texts: string[], apiKey: string): void {
    texts.length = 0;
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
      const text = plain.delta?.content;
      if (text) texts.push(text);
      if (plain.finish_reason) state.finishReason = mapOpenAIFinishReason(plain.finish_reason);
      return;
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
    for (const choice of chunk.choices ?? []) {
      const text = choice.delta?.content;
      if (text) texts.push(text);
      if (choice.finish_reason) state.finishReason = mapOpenAIFinishReason(choice.finish_reason);
    }
  }

  /** A one-piece answer as the same events a stream gives: its text, usage, done. Throws ProviderError. */
  private *readWhole(bodyText: string, apiKey: string): Generator<AdapterEvent> {
    const parsed = safeParseJson(bodyText, openaiCompletionSchema);
    if (!parsed.success) throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: unreadable answer (${parsed.error})` });
    const answer = parsed.value;
    if (answer.error) throw classifyOpenAIStreamError(this.spec, answer.error, apiKey);
    const choice = answer.choices?.[0];
    if (!choice) throw new ProviderError({ kind: 'transient', message: `${this.spec.id}: answer without a choice`, providerCode: 'truncated' });
    const text = choice.message?.content;
    if (text) yield { type: 'delta', text };
    const reported = answer.usage ?? answer.x_groq?.usage ?? choice.usage;
    if (reported) yield { type: 'usage', usage: convertOpenAIUsage(reported) };
    yield { type: 'done', finishReason: choice.finish_reason ? mapOpenAIFinishReason(choice.finish_reason) : 'stop' };
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

interface PlainChoice {
  delta?: { content?: string | null } | null;
  finish_reason?: string | null;
}

/**
 * The common chunk, `{"choices":[{"delta":{"content":"..."},"finish_reason":null}], ...}`, checked
 * with typeof alone (the zod pass was ~5% of the gateway's CPU at 20,000 chunks/s, issue #8).
 * Undefined for anything else: usage, errors, several choices or any unexpected type go through
 * openaiChunkSchema, which classifies them exactly as before.
 */
function plainDeltaChunk(raw: unknown): PlainChoice | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const chunk = raw as { choices?: unknown; usage?: unknown; x_groq?: unknown; error?: unknown };
  if (chunk.usage != null || chunk.x_groq != null || chunk.error != null) return undefined;
  const choices = chunk.choices;
  if (!Array.isArray(choices) || choices.length !== 1) return undefined;
  const choice = choices[0] as { delta?: unknown; finish_reason?: unknown; usage?: unknown } | null;
  if (typeof choice !== 'object' || choice === null || Array.isArray(choice) || choice.usage != null) return undefined;
  const finish = choice.finish_reason;
  if (finish != null && typeof finish !== 'string') return undefined;
  const delta = choice.delta as { content?: unknown } | null | undefined;
  if (delta != null) {
    if (typeof delta !== 'object' || Array.isArray(delta)) return undefined;
    if (delta.content != null && typeof delta.content !== 'string') return undefined;
  }
  return choice as PlainChoice;
}
