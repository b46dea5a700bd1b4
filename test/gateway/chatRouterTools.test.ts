import { describe, expect, it } from 'vitest';
import type { ChatRequestInput, StreamEvent } from '../../shared';
import { TokenService } from '../../server/auth/tokens';
import type { GatewayContext, GatewayDeps, PoolAdmin } from '../../server/gateway/context';
import { createCaller } from '../../server/gateway/router';
import { silentLogger } from '../../server/observability/logger';
import { pushEach, type ChatEngine, type ChatEngineRequest, type EventSink } from '../../server/streams/ChatEngine';
import { ChatStreams } from '../../server/streams/ChatStreams';
import { catalogOf, testModel } from '../support/gatewayHarness';

/**
 * Issue 20 through the tRPC router with a scripted engine: the whole request reaches the engine
 * as the client sent it, and tool-call and reasoning events come back, streamed or assembled.
 */

const TOOL_ANSWER: StreamEvent[] = [
  { type: 'start', provider: 'openai', model: 'gpt-4o', keyFingerprint: 'f1' },
  { type: 'reasoning', text: 'The user wants ' },
  { type: 'reasoning', text: 'the time.' },
  { type: 'delta', text: 'Checking.' },
  { type: 'tool_call_delta', index: 0, id: 'call_a', name: 'get_time', argumentsDelta: '{"time' },
  { type: 'tool_call_delta', index: 1, id: 'call_b', name: 'add', argumentsDelta: '{"a":1,' },
  { type: 'tool_call_delta', index: 0, argumentsDelta: 'zone":"UTC"}' },
  { type: 'tool_call_delta', index: 1, argumentsDelta: '"b":2}' },
  { type: 'usage', usage: { inputTokens: 9, outputTokens: 7, cachedInputTokens: 0, reasoningTokens: 3 } },
  { type: 'done', finishReason: 'tool_calls' },
];

class ScriptedEngine implements ChatEngine {
  requests: ChatEngineRequest[] = [];
  constructor(public script: StreamEvent[]) {}
  async run(req: ChatEngineRequest, emit: EventSink) {
    this.requests.push(req);
    await pushEach(this.script, emit);
  }
}

class NoPool implements PoolAdmin {
  async status() {
    return { at: 1, windowMs: 60_000, providers: [] };
  }
  async setKeyEnabled() {
    return false;
  }
}

async function setup(script: StreamEvent[]) {
  const engine = new ScriptedEngine(script);
  const deps: GatewayDeps = {
    engine,
    streams: new ChatStreams({ engine, logger: silentLogger }),
    catalog: await catalogOf([testModel('gpt-4o', 'openai')]),
    pool: new NoPool(),
    tokens: new TokenService('router-test-secret-router-test-secret-0123'),
    logger: silentLogger,
  };
  const ctx: GatewayContext = { deps, user: { id: 'alice', role: 'user' }, authRefusal: null, requestId: 'req-1' };
  return { engine, alice: createCaller(ctx) };
}

/** Every field of the request model at once: a conversation that already made and answered a call. */
const FULL_REQUEST = {
  model: 'gpt-4o',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'developer', content: [{ type: 'text', text: 'Use tools.' }] },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What is in this picture, and what time is it?' },
        { type: 'image', url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' },
        { type: 'image', url: 'https://example.com/cat.png' },
      ],
    },
    { role: 'assistant', content: '', toolCalls: [{ id: 'call_0', name: 'get_time', arguments: '{"timezone":"UTC"}' }] },
    { role: 'tool', toolCallId: 'call_0', content: '{"time":"12:00"}' },
  ],
  tools: [
    { type: 'function', name: 'get_time', description: 'The current time', parameters: { type: 'object', properties: { timezone: { type: 'string' } } }, strict: true },
    { type: 'function', name: 'add', parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } },
  ],
  toolChoice: { type: 'function', name: 'add' },
  parallelToolCalls: false,
  responseFormat: { type: 'json_schema', name: 'answer', schema: { type: 'object' }, strict: true },
  stop: ['END'],
  topP: 0.5,
  seed: 7,
  temperature: 0.3,
  presencePenalty: 0.1,
  frequencyPenalty: -0.1,
  maxTokens: 300,
  reasoningEffort: 'low',
} satisfies ChatRequestInput;

describe('chat router, issue 20', () => {
  it('issue 20: chat.complete assembles the tool calls (by index) and the reasoning of a whole answer', async () => {
    const { alice } = await setup(TOOL_ANSWER);
    const answer = await alice.chat.complete({ model: 'gpt-4o', messages: [{ role: 'user', content: 'time?' }], tools: [{ name: 'get_time' }, { name: 'add' }] });
    expect(answer).toMatchObject({
      text: 'Checking.',
      reasoning: 'The user wants the time.',
      finishReason: 'tool_calls',
      toolCalls: [
        { id: 'call_a', name: 'get_time', arguments: '{"timezone":"UTC"}' },
        { id: 'call_b', name: 'add', arguments: '{"a":1,"b":2}' },
      ],
    });
  });

  it('issue 20: chat.start and chat.complete hand every request field to the engine as sent', async () => {
    const { alice, engine } = await setup(TOOL_ANSWER);
    await alice.chat.complete(FULL_REQUEST);
    const { streamId } = await alice.chat.start(FULL_REQUEST);
    for await (const _ of await alice.chat.stream({ streamId })) void _;
    expect(engine.requests).toHaveLength(2);
    for (const req of engine.requests) expect(req.chat).toEqual(FULL_REQUEST);
  });

  it('issue 20: chat.start and chat.stream carry reasoning and tool_call_delta events in order', async () => {
    const { alice } = await setup(TOOL_ANSWER);
    const started = await alice.chat.start({ model: 'gpt-4o', messages: [{ role: 'user', content: 'time?' }], tools: [{ name: 'get_time' }] });
    const events = started.events.map((e) => e.event);
    const last = started.events.at(-1)?.id;
    for await (const item of await alice.chat.stream({ streamId: started.streamId, ...(last ? { lastEventId: last } : {}) })) {
      events.push((item as unknown as [string, StreamEvent])[1]);
    }
    expect(events).toEqual(TOOL_ANSWER);
  });

  it('issue 20: a tool message answering no earlier call is BAD_REQUEST before the engine runs', async () => {
    const { alice, engine } = await setup(TOOL_ANSWER);
    const error = await alice.chat
      .start({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }, { role: 'tool', toolCallId: 'call_x', content: 'orphan' }] })
      .catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('BAD_REQUEST');
    expect(engine.requests).toEqual([]);
  });
});
