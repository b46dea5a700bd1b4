import type { FinishReason } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { emitEach } from '../emitEach';
import { safeParseJson, safeParseValue } from '../http/parseJson';
import { readSseEvents } from '../http/sseEvents';
import { testKeyRequest } from '../http/testKeyRequest';
import { readAnthropicLimits } from '../http/rateLimitHeaders';
import { firstByteLimit, headerReader, readAnswerBody, readErrorBody, type UpstreamHttp } from '../http/UpstreamHttp';
import type { AdapterContext, AdapterEvent, AdapterSink, KeyTestResult, ProviderAdapter, UpstreamRequest } from '../types';
import { ANTHROPIC_VERSION, anthropicMessageSchema, anthropicStreamEventSchema, tokenUsageOf, type AnthropicStreamEvent, type AnthropicUsage } from './anthropicMessagesApi';
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
    if (ctx.onLimits) {
      const limits = readAnthropicLimits(headerReader(response), now());
      if (limits) ctx.onLimits(limits);
    }
    // json_object is asked as a forced tool (convertToAnthropicRequest): that tool's input is the
    // answer's text and its tool_use stop is a plain stop. A forced tool call comes without text
    // before it; any text there would not be JSON, so it is not passed on.
    const jsonViaTool = req.responseFormat?.type === 'json_object';
    if (req.delivery === 'whole') return emitEach(readWhole(await readAnswerBody(response, ctx.apiKey), jsonViaTool), emit);

    // message_start carries the input side, message_delta the (cumulative) output side.
    const usage: AnthropicUsage = {};
    let finishReason: FinishReason | undefined;
    let stopped = false;
    // Tool calls are numbered among themselves (0, 1, ...), not by content block: toolAt[block] = call index.
    const toolAt: number[] = [];
    let toolCount = 0;
    await readSseEvents(
      response.body,
      ctx.apiKey,
      (eventData) => {
        let raw: unknown;
        try {
          raw = JSON.parse(eventData);
        } catch {
          throw new ProviderError({ kind: 'transient', message: 'anthropic: unreadable stream event' });
        }
        // Nearly every event is a text delta: read it with typeof checks alone.
        const text = plainTextDelta(raw);
        if (text !== undefined) return text && !jsonViaTool ? emit({ type: 'delta', text }) : undefined;
        const parsed = safeParseValue(raw, anthropicStreamEventSchema);
        // Anthropic may add event types; only undecodable JSON is a broken stream.
        if (!parsed.success) return undefined;
        const data = parsed.value;
        switch (data.type) {
          case 'message_start':
            Object.assign(usage, definedOnly(data.message.usage));
            return undefined;
          case 'content_block_start': {
            const block = data.content_block;
            if (block.type !== 'tool_use' || jsonViaTool) return undefined;
            const index = toolCount++;
            toolAt[data.index] = index;
            return emit({ type: 'tool_call_delta', index, id: block.id ?? '', name: block.name ?? '', argumentsDelta: '' });
          }
          case 'content_block_delta':
            return readDelta(data, toolAt, jsonViaTool, emit);
          case 'message_delta':
            Object.assign(usage, definedOnly(data.usage));
            if (data.delta.stop_reason) finishReason = finishOf(data.delta.stop_reason, jsonViaTool);
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
    await emitEach([{ type: 'usage', usage: tokenUsageOf(usage) }, { type: 'done', finishReason: finishReason ?? 'stop' }], emit);
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

/**
 * `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"..."}}`: its text,
 * or undefined for any other event (read by anthropicStreamEventSchema).
 */
function plainTextDelta(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const event = raw as { type?: unknown; delta?: { type?: unknown; text?: unknown } | null };
  if (event.type !== 'content_block_delta' || typeof event.delta !== 'object' || event.delta === null) return undefined;
  const { type, text } = event.delta;
  return type === 'text_delta' && typeof text === 'string' ? text : undefined;
}

/**
 * input_json_delta: a fragment of the tool call's arguments (of the answer itself for json_object);
 * thinking_delta: reasoning. signature_delta is not read: it only proves the thinking block to
 * Anthropic when it is sent back, which Keyrack's messages cannot do (see convertToAnthropicRequest).
 */
function readDelta(
  data: Extract<AnthropicStreamEvent, { type: 'content_block_delta' }>,
  toolAt: readonly number[],
  jsonViaTool: boolean,
  emit: AdapterSink,
): void | Promise<void> {
  const delta = data.delta;
  switch (delta.type) {
    case 'text_delta':
      return delta.text && !jsonViaTool ? emit({ type: 'delta', text: delta.text }) : undefined;
    case 'input_json_delta': {
      if (!delta.partial_json) return undefined;
      if (jsonViaTool) return emit({ type: 'delta', text: delta.partial_json });
      const index = toolAt[data.index];
      return index === undefined ? undefined : emit({ type: 'tool_call_delta', index, argumentsDelta: delta.partial_json });
    }
    case 'thinking_delta':
      return delta.thinking ? emit({ type: 'reasoning', text: delta.thinking }) : undefined;
    default:
      return undefined;
  }
}

/** json_object is answered through a forced tool: its end (stop_reason tool_use) is the answer's end. */
function finishOf(stopReason: string, jsonViaTool: boolean): FinishReason {
  const reason = mapAnthropicStopReason(stopReason);
  return jsonViaTool && reason === 'tool_calls' ? 'stop' : reason;
}

/** A one-piece answer (a Message) as the same events a stream gives: reasoning, text, tool calls. Throws ProviderError. */
function readWhole(bodyText: string, jsonViaTool: boolean): AdapterEvent[] {
  const parsed = safeParseJson(bodyText, anthropicMessageSchema);
  if (!parsed.success) throw new ProviderError({ kind: 'transient', message: `anthropic: unreadable answer (${parsed.error})` });
  const message = parsed.value;
  let reasoning = '';
  let text = '';
  const calls: AdapterEvent[] = [];
  for (const block of message.content ?? []) {
    if (block.type === 'thinking' && block.thinking) reasoning += block.thinking;
    else if (block.type === 'text' && block.text && !jsonViaTool) text += block.text;
    else if (block.type === 'tool_use') {
      const input = JSON.stringify(block.input ?? {});
      if (jsonViaTool) text += input;
      else calls.push({ type: 'tool_call_delta', index: calls.length, id: block.id ?? '', name: block.name ?? '', argumentsDelta: input });
    }
  }
  return [
    ...(reasoning ? [{ type: 'reasoning', text: reasoning } as const] : []),
    ...(text ? [{ type: 'delta', text } as const] : []),
    ...calls,
    { type: 'usage', usage: tokenUsageOf(definedOnly(message.usage)) },
    { type: 'done', finishReason: message.stop_reason ? finishOf(message.stop_reason, jsonViaTool) : 'stop' },
  ];
}

function definedOnly(usage: AnthropicUsage | null | undefined): AnthropicUsage {
  const out: AnthropicUsage = {};
  for (const [k, v] of Object.entries(usage ?? {})) if (v !== null && v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
