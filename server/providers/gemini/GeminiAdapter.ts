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

    const state: AnswerState = { finishReason: undefined, usage: undefined };
    if (whole) {
      const texts = readChunk(await readAnswerBody(response, ctx.apiKey), state, ctx.apiKey);
      if (texts !== undefined) {
        const wait = emit({ type: 'delta', text: typeof texts === 'string' ? texts : texts.join('') });
        if (wait) await wait;
      }
    } else {
      await readSseEvents(
        response.body,
        ctx.apiKey,
        (data) => {
          return emitTexts(readChunk(data, state, ctx.apiKey), emit);
        },
        // Gemini's SSE has no end marker: the body's end is the answer's.
        () => false,
      );
    }
    // The last chunk carries the finish reason.
    if (state.finishReason === undefined) {
      throw new ProviderError({ kind: 'transient', message: 'google: answer ended before a finish reason', providerCode: 'truncated' });
    }
    await emitEach([...(state.usage ? [{ type: 'usage', usage: state.usage } as const] : []), { type: 'done', finishReason: state.finishReason }], emit);
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
    // Thought summaries are not part of the answer.
    if (part.text && !part.thought) texts = addText(texts, part.text);
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
