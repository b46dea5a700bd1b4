import type { FinishReason, TokenUsage } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { safeParseJson } from '../http/parseJson';
import { sseEvents } from '../http/sseEvents';
import { testKeyRequest } from '../http/testKeyRequest';
import { networkError, readErrorBody, type UpstreamHttp } from '../http/UpstreamHttp';
import type { AdapterContext, AdapterEvent, KeyTestResult, ProviderAdapter, UpstreamRequest } from '../types';
import { classifyGeminiError, classifyGeminiStreamError } from './classifyGeminiError';
import { convertToGeminiRequest, geminiModelPath } from './convertToGeminiRequest';
import { geminiChunkSchema } from './geminiApi';
import { mapGeminiFinishReason } from './mapGeminiFinishReason';

export class GeminiAdapter implements ProviderAdapter {
  constructor(private readonly http: UpstreamHttp) {}

  async *stream(req: UpstreamRequest, ctx: AdapterContext): AsyncGenerator<AdapterEvent> {
    const now = ctx.now ?? Date.now;
    // The key goes in a header, never the query string, so it cannot land in an access log.
    const response = await this.http.fetch(`${ctx.baseUrl}/v1beta/models/${geminiModelPath(req.model)}:streamGenerateContent?alt=sse`, {
      method: 'POST',
      headers: { 'x-goog-api-key': ctx.apiKey, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(convertToGeminiRequest(req)),
      signal: ctx.signal,
      apiKey: ctx.apiKey,
    });
    if (!response.ok || !response.body) {
      const bodyText = await readErrorBody(response);
      throw classifyGeminiError({ status: response.status, headers: response.headers, bodyText, apiKey: ctx.apiKey, now: now() });
    }

    let finishReason: FinishReason | undefined;
    let usage: TokenUsage | undefined;
    try {
      for await (const event of sseEvents(response.body)) {
        const parsed = safeParseJson(event.data, geminiChunkSchema);
        if (!parsed.success) throw new ProviderError({ kind: 'transient', message: `google: unreadable stream chunk (${parsed.error})` });
        const chunk = parsed.value;
        if (chunk.error) throw classifyGeminiStreamError(chunk.error, ctx.apiKey);
        const candidate = chunk.candidates?.[0];
        for (const part of candidate?.content?.parts ?? []) {
          // Thought summaries are not part of the answer.
          if (part.text && !part.thought) yield { type: 'delta', text: part.text };
        }
        if (candidate?.finishReason) finishReason = mapGeminiFinishReason(candidate.finishReason);
        if (chunk.promptFeedback?.blockReason) finishReason = 'content_filter';
        const u = chunk.usageMetadata;
        if (u) {
          const thoughts = u.thoughtsTokenCount ?? 0;
          usage = {
            inputTokens: u.promptTokenCount ?? 0,
            outputTokens: (u.candidatesTokenCount ?? 0) + thoughts,
            cachedInputTokens: u.cachedContentTokenCount ?? 0,
            reasoningTokens: thoughts,
          };
        }
      }
    } catch (error) {
      throw networkError(error, ctx.apiKey);
    }
    // Gemini's SSE has no end marker: the last chunk carries the finish reason.
    if (finishReason === undefined) {
      throw new ProviderError({ kind: 'transient', message: 'google: stream ended before a finish reason', providerCode: 'truncated' });
    }
    if (usage) yield { type: 'usage', usage };
    yield { type: 'done', finishReason };
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
