import type { FinishReason, TokenUsage } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { safeParseJson } from '../http/parseJson';
import { sseEvents } from '../http/sseEvents';
import { testKeyRequest } from '../http/testKeyRequest';
import { networkError, readAnswerBody, readErrorBody, type UpstreamHttp } from '../http/UpstreamHttp';
import type { AdapterContext, AdapterEvent, KeyTestResult, ProviderAdapter, UpstreamRequest } from '../types';
import { ANTHROPIC_VERSION, anthropicMessageSchema, anthropicStreamEventSchema, type AnthropicUsage } from './anthropicMessagesApi';
import { classifyAnthropicError, classifyAnthropicStreamError } from './classifyAnthropicError';
import { convertToAnthropicRequest } from './convertToAnthropicRequest';
import { mapAnthropicStopReason } from './mapAnthropicStopReason';

export class AnthropicAdapter implements ProviderAdapter {
  constructor(private readonly http: UpstreamHttp) {}

  private headers(apiKey: string): Record<string, string> {
    return { 'x-api-key': apiKey, 'anthropic-version': ANTHROPIC_VERSION, 'content-type': 'application/json' };
  }

  async *stream(req: UpstreamRequest, ctx: AdapterContext): AsyncGenerator<AdapterEvent> {
    const now = ctx.now ?? Date.now;
    const response = await this.http.fetch(`${ctx.baseUrl}/v1/messages`, {
      method: 'POST',
      headers: { ...this.headers(ctx.apiKey), accept: req.delivery === 'whole' ? 'application/json' : 'text/event-stream' },
      body: JSON.stringify(convertToAnthropicRequest(req)),
      signal: ctx.signal,
      apiKey: ctx.apiKey,
    });
    if (!response.ok || !response.body) {
      const bodyText = await readErrorBody(response);
      throw classifyAnthropicError({ status: response.status, headers: response.headers, bodyText, apiKey: ctx.apiKey, now: now() });
    }
    if (req.delivery === 'whole') {
      yield* readWhole(await readAnswerBody(response, ctx.apiKey));
      return;
    }

    // message_start carries the input side, message_delta the (cumulative) output side.
    const usage: AnthropicUsage = {};
    let finishReason: FinishReason | undefined;
    let stopped = false;
    try {
      for await (const event of sseEvents(response.body)) {
        const parsed = safeParseJson(event.data, anthropicStreamEventSchema);
        if (!parsed.success) {
          // Anthropic may add event types; only undecodable JSON is a broken stream.
          if (parsed.error === 'not JSON') throw new ProviderError({ kind: 'transient', message: 'anthropic: unreadable stream event' });
          continue;
        }
        const data = parsed.value;
        switch (data.type) {
          case 'message_start':
            Object.assign(usage, definedOnly(data.message.usage));
            break;
          case 'content_block_delta':
            if (data.delta.type === 'text_delta' && data.delta.text) yield { type: 'delta', text: data.delta.text };
            break;
          case 'message_delta':
            Object.assign(usage, definedOnly(data.usage));
            if (data.delta.stop_reason) finishReason = mapAnthropicStopReason(data.delta.stop_reason);
            break;
          case 'message_stop':
            stopped = true;
            break;
          case 'error':
            throw classifyAnthropicStreamError(data.error, ctx.apiKey);
          default:
            break;
        }
        if (stopped) break;
      }
    } catch (error) {
      throw networkError(error, ctx.apiKey);
    }
    if (!stopped) {
      throw new ProviderError({ kind: 'transient', message: 'anthropic: stream ended before message_stop', providerCode: 'truncated' });
    }
    yield { type: 'usage', usage: toTokenUsage(usage) };
    yield { type: 'done', finishReason: finishReason ?? 'stop' };
  }

  testKey(ctx: AdapterContext): Promise<KeyTestResult> {
    return testKeyRequest(this.http, {
      url: `${ctx.baseUrl}/v1/models`,
      method: 'GET',
      headers: this.headers(ctx.apiKey),
      apiKey: ctx.apiKey,
      signal: ctx.signal,
    });
  }
}

/** A one-piece answer (a Message) as the same events a stream gives. Throws ProviderError. */
function* readWhole(bodyText: string): Generator<AdapterEvent> {
  const parsed = safeParseJson(bodyText, anthropicMessageSchema);
  if (!parsed.success) throw new ProviderError({ kind: 'transient', message: `anthropic: unreadable answer (${parsed.error})` });
  const message = parsed.value;
  const text = (message.content ?? []).map((block) => (block.type === 'text' && block.text ? block.text : '')).join('');
  if (text) yield { type: 'delta', text };
  yield { type: 'usage', usage: toTokenUsage(definedOnly(message.usage)) };
  yield { type: 'done', finishReason: message.stop_reason ? mapAnthropicStopReason(message.stop_reason) : 'stop' };
}

function toTokenUsage(usage: AnthropicUsage): TokenUsage {
  const cacheRead = usage.cache_read_input_tokens ?? 0;
  return {
    // input_tokens excludes cache reads and cache writes; all three are input the model read.
    inputTokens: (usage.input_tokens ?? 0) + cacheRead + (usage.cache_creation_input_tokens ?? 0),
    outputTokens: usage.output_tokens ?? 0,
    cachedInputTokens: cacheRead,
    reasoningTokens: 0,
  };
}

function definedOnly(usage: AnthropicUsage | null | undefined): AnthropicUsage {
  const out: AnthropicUsage = {};
  for (const [k, v] of Object.entries(usage ?? {})) if (v !== null && v !== undefined) (out as Record<string, number>)[k] = v;
  return out;
}
