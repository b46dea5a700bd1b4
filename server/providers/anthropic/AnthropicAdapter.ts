import type { FinishReason, TokenUsage } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { emitEach } from '../emitEach';
import { safeParseJson } from '../http/parseJson';
import { readSseEvents } from '../http/sseEvents';
import { testKeyRequest } from '../http/testKeyRequest';
import { firstByteLimit, readAnswerBody, readErrorBody, type UpstreamHttp } from '../http/UpstreamHttp';
import type { AdapterContext, AdapterEvent, AdapterSink, KeyTestResult, ProviderAdapter, UpstreamRequest } from '../types';
import { ANTHROPIC_VERSION, anthropicMessageSchema, anthropicStreamEventSchema, type AnthropicUsage } from './anthropicMessagesApi';
import { classifyAnthropicError, classifyAnthropicStreamError } from './classifyAnthropicError';
import { convertToAnthropicRequest } from './convertToAnthropicRequest';
import { mapAnthropicStopReason } from './mapAnthropicStopReason';

export class AnthropicAdapter implements ProviderAdapter {
  constructor(private readonly http: UpstreamHttp) {}

  private headers(apiKey: string): Record<string, string> {
    return { 'x-api-key': apiKey, 'anthropic-version': ANTHROPIC_VERSION, 'content-type': 'application/json' };
  }

  async run(req: UpstreamRequest, ctx: AdapterContext, emit: AdapterSink): Promise<void> {
    const now = ctx.now ?? Date.now;
    const response = await this.http.fetch(`${ctx.baseUrl}/v1/messages`, {
      method: 'POST',
      headers: { ...this.headers(ctx.apiKey), accept: req.delivery === 'whole' ? 'application/json' : 'text/event-stream' },
      body: JSON.stringify(convertToAnthropicRequest(req)),
      signal: ctx.signal,
      apiKey: ctx.apiKey,
      ...firstByteLimit(req, ctx),
    });
    if (!response.ok || !response.body) {
      const bodyText = await readErrorBody(response);
      throw classifyAnthropicError({ status: response.status, headers: response.headers, bodyText, apiKey: ctx.apiKey, now: now() });
    }
    if (req.delivery === 'whole') return emitEach(readWhole(await readAnswerBody(response, ctx.apiKey)), emit);

    // message_start carries the input side, message_delta the (cumulative) output side.
    const usage: AnthropicUsage = {};
    let finishReason: FinishReason | undefined;
    let stopped = false;
    await readSseEvents(
      response.body,
      ctx.apiKey,
      (eventData) => {
        const parsed = safeParseJson(eventData, anthropicStreamEventSchema);
        if (!parsed.success) {
          // Anthropic may add event types; only undecodable JSON is a broken stream.
          if (parsed.error === 'not JSON') throw new ProviderError({ kind: 'transient', message: 'anthropic: unreadable stream event' });
          return undefined;
        }
        const data = parsed.value;
        switch (data.type) {
          case 'message_start':
            Object.assign(usage, definedOnly(data.message.usage));
            return undefined;
          case 'content_block_delta':
            return data.delta.type === 'text_delta' && data.delta.text ? emit({ type: 'delta', text: data.delta.text }) : undefined;
          case 'message_delta':
            Object.assign(usage, definedOnly(data.usage));
            if (data.delta.stop_reason) finishReason = mapAnthropicStopReason(data.delta.stop_reason);
            return undefined;
          case 'message_stop':
            stopped = true;
            return undefined;
          case 'error':
            throw classifyAnthropicStreamError(data.error, ctx.apiKey);
          default:
            return undefined;
        }
      },
      () => stopped,
    );
    if (!stopped) {
      throw new ProviderError({ kind: 'transient', message: 'anthropic: stream ended before message_stop', providerCode: 'truncated' });
    }
    await emitEach([{ type: 'usage', usage: toTokenUsage(usage) }, { type: 'done', finishReason: finishReason ?? 'stop' }], emit);
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
function readWhole(bodyText: string): AdapterEvent[] {
  const parsed = safeParseJson(bodyText, anthropicMessageSchema);
  if (!parsed.success) throw new ProviderError({ kind: 'transient', message: `anthropic: unreadable answer (${parsed.error})` });
  const message = parsed.value;
  const text = (message.content ?? []).map((block) => (block.type === 'text' && block.text ? block.text : '')).join('');
  return [
    ...(text ? [{ type: 'delta', text } as const] : []),
    { type: 'usage', usage: toTokenUsage(definedOnly(message.usage)) },
    { type: 'done', finishReason: message.stop_reason ? mapAnthropicStopReason(message.stop_reason) : 'stop' },
  ];
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
