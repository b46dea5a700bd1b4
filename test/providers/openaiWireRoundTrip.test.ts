import fc from 'fast-check';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chatRequestSchema, type ChatRequest } from '../../shared';
import { openaiChatRequestSchema, readOpenAIChatRequest, refusalOf, toChatRequest, wirePath } from '../../server/gateway/openai/openaiWire';
import { createAdapters } from '../../server/providers/createAdapters';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';
import { convertToOpenAIChatRequest } from '../../server/providers/openai-compatible/convertToOpenAIChatRequest';
import { PROVIDER_SPECS } from '../../server/providers/registry';
import { ProviderError } from '../../server/providers/ProviderError';
import type { UpstreamRequest } from '../../server/providers/types';
import { adapterEvents } from '../support/adapterEvents';
import { collect, data, sseResponse } from './support/sseResponse';

/**
 * Issue 20: the OpenAI wire both ways. What the OpenAI-compatible adapter sends is exactly what
 * /v1 reads, so a random valid request converted to the wire and read back is the same request;
 * a random invalid one is refused naming its field.
 */

const text = fc.string({ minLength: 0, maxLength: 20 });
/** A number as JSON carries it (-0 is written as 0). */
const number = (min: number, max: number) => fc.double({ min, max, noNaN: true }).map((v) => (Object.is(v, -0) ? 0 : v));
const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,10}$/);
const callId = fc.stringMatching(/^call_[A-Za-z0-9]{1,12}$/);
const image = fc.record(
  {
    type: fc.constant('image' as const),
    url: fc.oneof(fc.constant('data:image/png;base64,iVBORw0KGgo='), fc.webUrl({ validSchemes: ['https'] }).filter((u) => u.length < 2000 && !/\s/.test(u))),
    detail: fc.constantFrom('auto' as const, 'low' as const, 'high' as const),
  },
  { requiredKeys: ['type', 'url'] },
);
const textPart = fc.record({ type: fc.constant('text' as const), text });
const instruction = fc.oneof(text, fc.array(textPart, { minLength: 1, maxLength: 3 }));
const schema = fc.constantFrom({ type: 'object', properties: { a: { type: 'string' } }, required: ['a'] }, { type: 'object', properties: {} }, { type: 'array', items: { type: 'number' } });

/** A conversation whose tool results answer earlier calls (the shared rules' requirement). */
const messages = fc
  .array(
    fc.oneof(
      fc.record({ role: fc.constantFrom('system' as const, 'developer' as const), content: instruction }),
      fc.record({ role: fc.constant('user' as const), content: fc.oneof(text, fc.array(fc.oneof(textPart, image), { minLength: 1, maxLength: 3 })) }),
      fc.record({ role: fc.constant('assistant' as const), content: text }),
      fc.record({
        role: fc.constant('assistant' as const),
        content: text,
        toolCalls: fc.array(fc.record({ id: callId, name, arguments: fc.json() }), { minLength: 1, maxLength: 3 }),
      }),
    ),
    { minLength: 1, maxLength: 6 },
  )
  .map((list) => {
    // Each call answered by a tool message right after its assistant message.
    const out: ChatRequest['messages'] = [];
    for (const m of list) {
      out.push(m as ChatRequest['messages'][number]);
      if (m.role === 'assistant' && 'toolCalls' in m) for (const call of m.toolCalls) out.push({ role: 'tool', toolCallId: call.id, content: `result of ${call.name}` });
    }
    return out;
  });

const tools = fc.uniqueArray(
  fc.record({ type: fc.constant('function' as const), name, description: text, parameters: schema, strict: fc.boolean() }, { requiredKeys: ['type', 'name'] }),
  { minLength: 1, maxLength: 4, selector: (t) => t.name },
);

const validRequest: fc.Arbitrary<ChatRequest> = fc
  .record(
    {
      model: fc.constant('gpt-4o'),
      messages,
      maxTokens: fc.integer({ min: 1, max: 100_000 }),
      temperature: number(0, 2),
      topP: number(0, 1),
      stop: fc.array(fc.string({ minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 4 }),
      seed: fc.integer().map((v) => (Object.is(v, -0) ? 0 : v)),
      presencePenalty: number(-2, 2),
      frequencyPenalty: number(-2, 2),
      tools,
      responseFormat: fc.oneof(
        fc.constant({ type: 'text' as const }),
        fc.constant({ type: 'json_object' as const }),
        fc.record({ type: fc.constant('json_schema' as const), name: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/), schema, strict: fc.boolean(), description: text }, { requiredKeys: ['type', 'name', 'schema'] }),
      ),
      reasoningEffort: fc.constantFrom('none' as const, 'minimal' as const, 'low' as const, 'medium' as const, 'high' as const),
    },
    { requiredKeys: ['model', 'messages'] },
  )
  .chain((req) =>
    req.tools
      ? fc
          .record(
            {
              toolChoice: fc.oneof(fc.constantFrom('auto' as const, 'none' as const, 'required' as const), fc.constantFrom(...req.tools).map((t) => ({ type: 'function' as const, name: t.name }))),
              parallelToolCalls: fc.boolean(),
            },
            { requiredKeys: [] },
          )
          .map((extra) => ({ ...req, ...extra }))
      : fc.constant(req),
  )
  .map((req) => chatRequestSchema.parse(req));

/** The request as the adapter sends it, read back the way /v1 reads a body. */
function roundTrip(req: ChatRequest, delivery: 'stream' | 'whole'): ChatRequest {
  const { model, ...fields } = req;
  const upstream: UpstreamRequest = { provider: 'openai', model, ...fields, delivery };
  const wire = JSON.parse(JSON.stringify(convertToOpenAIChatRequest(upstream, PROVIDER_SPECS.openai))) as unknown;
  const read = readOpenAIChatRequest(wire);
  if (!read.ok) throw new Error(`refused: ${read.refusal.message}`);
  return chatRequestSchema.parse(read.chat);
}

describe('the OpenAI wire both ways (issue 20)', () => {
  it('issue 20: random valid requests convert to the OpenAI wire and back without loss (property)', () => {
    fc.assert(
      fc.property(validRequest, fc.constantFrom('stream' as const, 'whole' as const), (req, delivery) => {
        expect(roundTrip(req, delivery)).toEqual(req);
      }),
      { numRuns: 300 },
    );
  });

  it('issue 20: the plain-chat fast path reads a body exactly as the wire schema does (property)', () => {
    const plainBody = fc.record(
      {
        model: fc.constant('gpt-4o'),
        messages: fc.array(fc.record({ role: fc.constantFrom('system', 'developer', 'user', 'assistant'), content: text }), { minLength: 1, maxLength: 4 }),
        stream: fc.option(fc.boolean()),
        stream_options: fc.option(fc.record({ include_usage: fc.option(fc.boolean()) }, { requiredKeys: [] })),
        max_tokens: fc.option(fc.integer({ min: -5, max: 1000 })),
        max_completion_tokens: fc.option(fc.integer({ min: 1, max: 1000 })),
        temperature: fc.option(fc.double({ min: -1, max: 3, noNaN: true })),
        top_p: fc.option(fc.double({ min: 0, max: 2, noNaN: true })),
      },
      { requiredKeys: ['model', 'messages'] },
    );
    fc.assert(
      fc.property(plainBody, (body) => {
        const read = readOpenAIChatRequest(body);
        const schema = openaiChatRequestSchema.safeParse(body);
        // The shared rules decide the same way on both readings.
        const viaSchema = schema.success ? chatRequestSchema.safeParse(toChatRequest(schema.data)) : null;
        const viaRead = read.ok ? chatRequestSchema.safeParse(read.chat) : null;
        expect(viaRead?.success ?? false).toBe(viaSchema?.success ?? false);
        if (viaRead?.success && viaSchema?.success) expect(viaRead.data).toEqual(viaSchema.data);
      }),
      { numRuns: 300 },
    );
  });

  it('issue 20: random invalid requests are refused naming the field (property)', () => {
    const wireOf = (req: ChatRequest) => JSON.parse(JSON.stringify(convertToOpenAIChatRequest({ ...req, provider: 'openai', delivery: 'whole' }, PROVIDER_SPECS.openai))) as Record<string, unknown>;
    const breakage = fc.oneof(
      fc.double({ min: 1.001, max: 100, noNaN: true }).map((v) => [(w: Record<string, unknown>) => ({ ...w, top_p: v }), 'top_p'] as const),
      fc.double({ min: -100, max: -2.001, noNaN: true }).map((v) => [(w: Record<string, unknown>) => ({ ...w, frequency_penalty: v }), 'frequency_penalty'] as const),
      fc.integer({ min: 2, max: 10 }).map((v) => [(w: Record<string, unknown>) => ({ ...w, n: v }), 'n'] as const),
      fc.constantFrom('logprobs', 'audio', 'prediction', 'metadata', 'functions').map((k) => [(w: Record<string, unknown>) => ({ ...w, [k]: { x: 1 } }), k] as const),
      fc.stringMatching(/^[a-z]{2,8}_unknown$/).map((k) => [(w: Record<string, unknown>) => ({ ...w, [k]: true }), k] as const),
      fc.constant([(w: Record<string, unknown>) => ({ ...w, messages: [...(w.messages as unknown[]), { role: 'tool', tool_call_id: 'call_nobody', content: 'x' }] }), `messages[*].tool_call_id`] as const),
      fc.constant([(w: Record<string, unknown>) => ({ ...w, max_completion_tokens: 0 }), 'max_completion_tokens'] as const),
    );
    fc.assert(
      fc.property(validRequest, breakage, (req, [breakIt, param]) => {
        const wire = breakIt(wireOf(req));
        const read = readOpenAIChatRequest(wire);
        const refusal = read.ok
          ? (() => {
              const checked = chatRequestSchema.safeParse(read.chat);
              return checked.success ? null : refusalOf(checked.error.issues[0], (path) => wirePath(path, read.wire));
            })()
          : read.refusal;
        expect(refusal, JSON.stringify(wire).slice(0, 300)).not.toBeNull();
        if (param.includes('*')) expect(refusal!.param).toMatch(/^messages\[\d+\]\.tool_call_id$/);
        else expect(refusal!.param).toBe(param);
      }),
      { numRuns: 200 },
    );
  });
});

describe('OpenAI-compatible providers: quirks as data (issue 20)', () => {
  const base: UpstreamRequest = { provider: 'groq', model: 'm', messages: [{ role: 'developer', content: 'be brief' }, { role: 'user', content: 'a' }, { role: 'user', content: 'b' }] };

  it('issue 20: developer is system outside OpenAI; plain consecutive messages merge, tool calls and results never do', () => {
    expect(convertToOpenAIChatRequest(base, PROVIDER_SPECS.groq).messages).toEqual([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'a\n\nb' },
    ]);
    expect(convertToOpenAIChatRequest({ ...base, provider: 'openai' }, PROVIDER_SPECS.openai).messages[0]).toEqual({ role: 'developer', content: 'be brief' });
    const tooling: UpstreamRequest = {
      provider: 'mistral',
      model: 'm',
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: '', toolCalls: [{ id: 'call_1', name: 'f', arguments: '{}' }] },
        { role: 'assistant', content: 'more' },
        { role: 'tool', toolCallId: 'call_1', content: 'r1' },
        { role: 'tool', toolCallId: 'call_1', content: 'r2' },
      ],
    };
    expect(convertToOpenAIChatRequest(tooling, PROVIDER_SPECS.mistral).messages.map((m) => m.role)).toEqual(['user', 'assistant', 'assistant', 'tool', 'tool']);
  });

  it("issue 20: each provider's fields: Mistral's random_seed, refusals naming the field for what a provider cannot take", () => {
    expect(convertToOpenAIChatRequest({ ...base, provider: 'mistral', seed: 7 }, PROVIDER_SPECS.mistral)).toMatchObject({ random_seed: 7 });
    const refused = (req: Partial<UpstreamRequest>, provider: keyof typeof PROVIDER_SPECS) => {
      try {
        convertToOpenAIChatRequest({ ...base, provider, ...req }, PROVIDER_SPECS[provider]);
        return null;
      } catch (error) {
        expect(ProviderError.isInstance(error) && error.kind).toBe('bad_request');
        return (error as ProviderError).param;
      }
    };
    expect(refused({ tools: [{ type: 'function', name: 'f' }] }, 'perplexity')).toBe('tools');
    expect(refused({ seed: 1 }, 'deepseek')).toBe('seed');
    expect(refused({ responseFormat: { type: 'json_schema', name: 'x', schema: {} } }, 'deepseek')).toBe('responseFormat');
    expect(refused({ responseFormat: { type: 'json_object' } }, 'perplexity')).toBe('responseFormat');
    expect(refused({ reasoningEffort: 'medium' }, 'xai')).toBe('reasoningEffort');
    expect(refused({ reasoningEffort: 'high' }, 'xai')).toBeNull();
    expect(refused({ parallelToolCalls: false, tools: [{ type: 'function', name: 'f' }] }, 'kimi')).toBe('parallelToolCalls');
  });
});

describe('OpenAI-compatible adapter reads tool calls and reasoning (issue 20)', () => {
  const BASE = 'https://openai.test/v1';
  const KEY = 'sk-test-openai-toolcalls-0123456789';
  const server = setupServer();
  const upstream = new UpstreamHttp();
  const adapters = createAdapters(upstream);
  const req: UpstreamRequest = { provider: 'deepseek', model: 'deepseek-chat', messages: [{ role: 'user', content: 'Hi' }], tools: [{ type: 'function', name: 'get_time' }] };
  const ctx = () => ({ apiKey: KEY, baseUrl: BASE, signal: new AbortController().signal });
  beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
  afterEach(() => server.resetHandlers());
  afterAll(async () => {
    server.close();
    await upstream.close();
  });
  const choice = (delta: unknown, finish: string | null = null) => ({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] });

  it('issue 20: streamed tool calls and reasoning_content become tool_call_delta and reasoning events, finish tool_calls', async () => {
    server.use(
      http.post(`${BASE}/chat/completions`, () =>
        sseResponse([
          data(choice({ role: 'assistant', content: null, reasoning_content: 'Let me ' })),
          data(choice({ reasoning_content: 'think.' })),
          data(choice({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'get_time', arguments: '' } }] })),
          data(choice({ tool_calls: [{ index: 0, function: { arguments: '{"tz":' } }] })),
          data(choice({ tool_calls: [{ index: 0, function: { arguments: '"UTC"}' } }] })),
          // A server that sends a whole call in one piece, without index or id.
          data(choice({ tool_calls: [{ function: { name: 'get_time', arguments: '{}' } }] })),
          data(choice({}, 'tool_calls')),
          'data: [DONE]\n\n',
        ]),
      ),
    );
    const events = await collect(adapterEvents(adapters.deepseek, req, ctx()));
    expect(events.slice(0, 5)).toEqual([
      { type: 'reasoning', text: 'Let me ' },
      { type: 'reasoning', text: 'think.' },
      { type: 'tool_call_delta', index: 0, id: 'call_a', name: 'get_time', argumentsDelta: '' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '{"tz":' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '"UTC"}' },
    ]);
    // Without an index, a fragment naming a call is the next call; without an id, it gets one.
    expect(events[5]).toEqual({ type: 'tool_call_delta', index: 1, id: expect.stringMatching(/^call_[0-9a-f]{24}$/), name: 'get_time', argumentsDelta: '{}' });
    expect(events.at(-1)).toEqual({ type: 'done', finishReason: 'tool_calls' });
  });

  it('issue 20: a whole answer with tool calls and reasoning_content gives the same events', async () => {
    server.use(
      http.post(`${BASE}/chat/completions`, () =>
        HttpResponse.json({
          choices: [{ index: 0, message: { role: 'assistant', content: null, reasoning_content: 'hmm', tool_calls: [{ id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{}' } }] }, finish_reason: 'tool_calls' }],
          usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
        }),
      ),
    );
    const events = await collect(adapterEvents(adapters.deepseek, { ...req, delivery: 'whole' }, ctx()));
    expect(events).toEqual([
      { type: 'reasoning', text: 'hmm' },
      { type: 'tool_call_delta', index: 0, id: 'call_b', name: 'get_time', argumentsDelta: '{}' },
      { type: 'usage', usage: { inputTokens: 3, outputTokens: 4, cachedInputTokens: 0, reasoningTokens: 0 } },
      { type: 'done', finishReason: 'tool_calls' },
    ]);
  });
});
