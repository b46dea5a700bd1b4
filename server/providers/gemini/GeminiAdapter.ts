import type { FinishReason, TokenUsage } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { addText, emitEach, emitTexts, type ChunkTexts } from '../emitEach';
import { safeParseJson } from '../http/parseJson';
import { readSseEvents } from '../http/sseEvents';
import { testKeyRequest } from '../http/testKeyRequest';
import { firstByteLimit, readAnswerBody, readErrorBody, type UpstreamHttp } from '../http/UpstreamHttp';
import type { AdapterContext, AdapterEvent, AdapterSink, KeyTestResult, ProviderAdapter, UpstreamRequest } from '../types';
import { classifyGeminiError, classifyGeminiStreamError } from './classifyGeminiError';
import { convertToGeminiRequest, geminiModelPath } from './convertToGeminiRequest';
import { geminiChunkSchema } from './geminiApi';
import { geminiToolCallId, toolCallIdSeed } from './geminiToolCallId';
import { mapGeminiFinishReason } from './mapGeminiFinishReason';

export class GeminiAdapter implements ProviderAdapter {
  constructor(private readonly http: UpstreamHttp) {}

  async run(req: UpstreamRequest, ctx: AdapterContext, emit: AdapterSink): Promise<void> {
    const now = ctx.now ?? Date.now;
    const whole = req.delivery === 'whole';
    // The key goes in a header, never the query string, so it cannot land in an access log.
    // A whole answer is one GenerateContentResponse: the same shape as each streamed chunk.
    const method = whole ? 'generateContent' : 'streamGenerateContent?alt=sse';
    const response = await this.http.fetch(`${ctx.baseUrl}/v1beta/models/${geminiModelPath(req.model)}:${method}`, {
      method: 'POST',
      headers: { 'x-goog-api-key': ctx.apiKey, 'content-type': 'application/json', accept: whole ? 'application/json' : 'text/event-stream' },
      body: JSON.stringify(convertToGeminiRequest(req)),
      signal: ctx.signal,
      apiKey: ctx.apiKey,
      ...firstByteLimit(req, ctx),
    });
    if (!response.ok || !response.body) {
      const bodyText = await readErrorBody(response);
      throw classifyGeminiError({ status: response.status, headers: response.headers, bodyText, apiKey: ctx.apiKey, now: now() });
    }

    const state: AnswerState = { finishReason: undefined, usage: undefined, toolCalls: 0, idSeed: undefined, events: undefined };
    if (whole) {
      const texts = readChunk(await readAnswerBody(response, ctx.apiKey), state, ctx.apiKey);
      if (state.events) await emitEach(state.events, emit);
      else if (texts !== undefined) {
        const wait = emit({ type: 'delta', text: typeof texts === 'string' ? texts : texts.join('') });
        if (wait) await wait;
      }
    } else {
      await readSseEvents(
        response.body,
        ctx.apiKey,
        (data) => {
          const texts = readChunk(data, state, ctx.apiKey);
          if (state.events === undefined) return emitTexts(texts, emit);
          const events = state.events;
          state.events = undefined;
          return emitEach(events, emit);
        },
        // Gemini's SSE has no end marker: the body's end is the answer's.
        () => false,
      );
    }
    // The last chunk carries the finish reason.
    if (state.finishReason === undefined) {
      throw new ProviderError({ kind: 'transient', message: 'google: answer ended before a finish reason', providerCode: 'truncated' });
    }
    // Gemini says STOP after function calls; the caller must hear that calls await their results.
    const finishReason = state.toolCalls > 0 && state.finishReason === 'stop' ? 'tool_calls' : state.finishReason;
    await emitEach([...(state.usage ? [{ type: 'usage', usage: state.usage } as const] : []), { type: 'done', finishReason }], emit);
  }

  testKey(ctx: AdapterContext): Promise<KeyTestResult> {
    return testKeyRequest(this.http, {
      url: `${ctx.baseUrl}/v1beta/models`,
      method: 'GET',
      headers: { 'x-goog-api-key': ctx.apiKey },
      apiKey: ctx.apiKey,
      signal: ctx.signal,
    });
  }
}

interface AnswerState {
  finishReason: FinishReason | undefined;
  usage: TokenUsage | undefined;
  /** Function calls so far: the next one's index. */
  toolCalls: number;
  /** What this answer's made-up call ids share (geminiToolCallId.ts), set at its first call. */
  idSeed: string | undefined;
  /**
   * A chunk's events in order, when it has a thought or a function call (rare): then its texts
   * go here too. A plain-text chunk only returns its texts, the fast path.
   */
  events: AdapterEvent[] | undefined;
}

/** One GenerateContentResponse (a streamed chunk or the whole answer): returns its texts, puts the rest into `state`. Throws ProviderError. */
function readChunk(data: string, state: AnswerState, apiKey: string): ChunkTexts {
  let texts: ChunkTexts;
  const parsed = safeParseJson(data, geminiChunkSchema);
  if (!parsed.success) throw new ProviderError({ kind: 'transient', message: `google: unreadable answer (${parsed.error})` });
  const chunk = parsed.value;
  if (chunk.error) throw classifyGeminiStreamError(chunk.error, apiKey);
  const candidate = chunk.candidates?.[0];
  for (const part of candidate?.content?.parts ?? []) {
    if (part.text && !part.thought && !part.functionCall) {
      if (state.events) state.events.push({ type: 'delta', text: part.text });
      else texts = addText(texts, part.text);
      continue;
    }
    if (!part.functionCall && !(part.thought && part.text)) continue; // e.g. an empty part carrying only a thoughtSignature
    if (!state.events) state.events = textEvents(texts);
    texts = undefined;
    if (part.functionCall) {
      // Gemini sends a call whole, in one part: one fragment carries id, name and all the arguments.
      const index = state.toolCalls++;
      const id = geminiToolCallId(part.functionCall.id, (state.idSeed ??= toolCallIdSeed(chunk.responseId)), index);
      state.events.push({ type: 'tool_call_delta', index, id, name: part.functionCall.name, argumentsDelta: JSON.stringify(part.functionCall.args ?? {}) });
    } else {
      // A thought summary (includeThoughts): shown apart from the answer.
      state.events.push({ type: 'reasoning', text: part.text as string });
    }
  }
  if (candidate?.finishReason) state.finishReason = mapGeminiFinishReason(candidate.finishReason);
  if (chunk.promptFeedback?.blockReason) state.finishReason = 'content_filter';
  const u = chunk.usageMetadata;
  if (u) {
    const thoughts = u.thoughtsTokenCount ?? 0;
    state.usage = {
      inputTokens: u.promptTokenCount ?? 0,
      outputTokens: (u.candidatesTokenCount ?? 0) + thoughts,
      cachedInputTokens: u.cachedContentTokenCount ?? 0,
      reasoningTokens: thoughts,
    };
  }
  return texts;
}

function textEvents(texts: ChunkTexts): AdapterEvent[] {
  if (texts === undefined) return [];
  return (typeof texts === 'string' ? [texts] : texts).map((text): AdapterEvent => ({ type: 'delta', text }));
}
