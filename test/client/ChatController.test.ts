import { describe, expect, it } from 'vitest';
import type { ChatRequest, StreamEvent } from '../../shared';
import { ChatController, KeyrackError, tool, type ChatStreamHandlers, type ChatTransport } from '../../client/sdk';

/**
 * The controller alone, over a scripted transport: what a resumed stream may repeat, what
 * stop() keeps, how failures land in the state. The hooks' tests run it against a real gateway.
 */
class ScriptedTransport implements ChatTransport {
  requests: ChatRequest[] = [];
  opened: { streamId: string; lastEventId?: string }[] = [];
  handlers: ChatStreamHandlers | null = null;
  cancelled = 0;
  constructor(
    private readonly startResult: () => Promise<{ streamId: string; events?: { id: string; event: StreamEvent }[] }> = async () => ({ streamId: 's1' }),
  ) {}
  start(request: ChatRequest) {
    this.requests.push(request);
    return this.startResult();
  }
  stream(input: { streamId: string; lastEventId?: string }, handlers: ChatStreamHandlers) {
    this.opened.push(input);
    this.handlers = handlers;
    return () => {
      this.cancelled += 1;
    };
  }
  emit(id: number, event: StreamEvent) {
    this.handlers!.onEvent({ id: String(id), event });
  }
}

async function opened(transport: ScriptedTransport, count: number) {
  await expect.poll(() => transport.opened.length).toBe(count);
}

/** A transport whose chat.start brings `start` and then `events` (ids from 1). */
function startingWith(...events: StreamEvent[]): ScriptedTransport {
  const all: StreamEvent[] = [{ type: 'start', provider: 'openai', model: 'gpt-4o', keyFingerprint: 'abcd' }, ...events];
  return new ScriptedTransport(async () => ({ streamId: 's1', events: all.map((event, i) => ({ id: String(i + 1), event })) }));
}

describe('ChatController', () => {
  it('shows the events chat.start brought at once and opens the stream after the last of them', async () => {
    const transport = startingWith({ type: 'delta', text: 'Hi ' });
    const chat = new ChatController({ transport, model: 'gpt-4o' });
    const done = chat.send('hello');
    await opened(transport, 1);
    expect(transport.opened[0]).toEqual({ streamId: 's1', lastEventId: '2' });
    expect(chat.getSnapshot().status).toBe('streaming');
    expect(chat.getSnapshot().messages[1]?.content).toBe('Hi ');
    transport.emit(2, { type: 'delta', text: 'Hi ' }); // a repeat (a server without lastEventId): ignored
    transport.emit(3, { type: 'delta', text: 'there' });
    transport.emit(4, { type: 'done', finishReason: 'stop' });
    await done;
    expect(chat.getSnapshot().messages[1]).toMatchObject({ content: 'Hi there', finishReason: 'stop' });
  });

  it('an answer that chat.start brought whole needs no stream', async () => {
    const transport = startingWith({ type: 'delta', text: 'Short.' }, { type: 'done', finishReason: 'stop' });
    const chat = new ChatController({ transport, model: 'gpt-4o' });
    await chat.send('hello');
    expect(transport.opened).toEqual([]);
    expect(chat.getSnapshot()).toMatchObject({ status: 'ready' });
    expect(chat.getSnapshot().messages[1]).toMatchObject({ content: 'Short.', finishReason: 'stop' });
  });

  it('streams deltas into one assistant message, then records usage, cost and finish', async () => {
    const transport = new ScriptedTransport();
    const finished: string[] = [];
    const chat = new ChatController({ transport, model: 'gpt-4o', onFinish: (m) => finished.push(m.content) });
    const statuses: string[] = [];
    chat.subscribe(() => statuses.push(chat.getSnapshot().status));
    const done = chat.send('  hello  ');
    expect(chat.getSnapshot().status).toBe('submitted');
    await opened(transport, 1);
    expect(transport.requests[0]).toEqual({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] });
    transport.emit(1, { type: 'start', provider: 'openai', model: 'gpt-4o', keyFingerprint: 'abcd' });
    transport.emit(2, { type: 'delta', text: 'Hi ' });
    transport.emit(3, { type: 'delta', text: 'there' });
    transport.emit(4, { type: 'usage', usage: { inputTokens: 3, outputTokens: 2, cachedInputTokens: 0, reasoningTokens: 0 }, cost: { estimatedUsd: 0.001 } });
    transport.emit(5, { type: 'done', finishReason: 'stop' });
    await done;
    const state = chat.getSnapshot();
    expect(state.status).toBe('ready');
    expect(state.messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'hello'],
      ['assistant', 'Hi there'],
    ]);
    expect(state.messages[1]).toMatchObject({ provider: 'openai', keyFingerprint: 'abcd', finishReason: 'stop' });
    expect(state.usage?.outputTokens).toBe(2);
    expect(state.cost?.estimatedUsd).toBe(0.001);
    expect(finished).toEqual(['Hi there']);
    expect(statuses).toContain('streaming');
  });

  it('resumes a dropped stream after the last event and ignores events it already has', async () => {
    const transport = new ScriptedTransport();
    const chat = new ChatController({ transport, model: 'm' });
    const done = chat.send('x');
    await opened(transport, 1);
    transport.emit(1, { type: 'start', provider: 'openai', model: 'm', keyFingerprint: 'f' });
    transport.emit(2, { type: 'delta', text: 'one ' });
    transport.handlers!.onError(new TypeError('fetch failed'));
    expect(transport.opened[1]).toEqual({ streamId: 's1', lastEventId: '2' });
    // A server that replays from an earlier point must not double the text.
    transport.emit(2, { type: 'delta', text: 'one ' });
    transport.emit(3, { type: 'delta', text: 'two' });
    transport.emit(4, { type: 'done', finishReason: 'stop' });
    await done;
    expect(chat.getSnapshot().messages.at(-1)?.content).toBe('one two');
  });

  it('stop() keeps the text so far, cancels the stream and ignores late events', async () => {
    const transport = new ScriptedTransport();
    const chat = new ChatController({ transport, model: 'm' });
    const done = chat.send('x');
    await opened(transport, 1);
    transport.emit(1, { type: 'delta', text: 'partial' });
    chat.stop();
    await done;
    transport.emit(2, { type: 'delta', text: ' late' });
    const state = chat.getSnapshot();
    expect(transport.cancelled).toBe(1);
    expect(state.status).toBe('ready');
    expect(state.messages.at(-1)).toMatchObject({ content: 'partial', finishReason: 'aborted' });
  });

  it('an error event sets status, error and retryAfterMs and drops an empty answer', async () => {
    const transport = new ScriptedTransport();
    const chat = new ChatController({ transport, model: 'm' });
    const done = chat.send('x');
    await opened(transport, 1);
    transport.emit(1, { type: 'error', code: 'rate_limited', message: 'every key is busy', retryAfterMs: 1500 });
    await done;
    const state = chat.getSnapshot();
    expect(state.status).toBe('error');
    expect(KeyrackError.isInstance(state.error)).toBe(true);
    expect(state.error?.code).toBe('rate_limited');
    expect(state.retryAfterMs).toBe(1500);
    expect(state.messages.map((m) => m.role)).toEqual(['user']);
  });

  it('a refused start is an error state, and the next send clears it', async () => {
    let refuse = true;
    const transport = new ScriptedTransport(async () => {
      if (refuse) throw new KeyrackError('rate_limited', 'busy', 2000);
      return { streamId: 's2' };
    });
    const chat = new ChatController({ transport, model: 'm' });
    await chat.send('x');
    expect(chat.getSnapshot()).toMatchObject({ status: 'error', retryAfterMs: 2000 });
    refuse = false;
    const done = chat.send('again');
    expect(chat.getSnapshot()).toMatchObject({ status: 'submitted', error: null, retryAfterMs: undefined });
    await opened(transport, 1);
    transport.emit(1, { type: 'done', finishReason: 'stop' });
    await done;
    expect(chat.getSnapshot().status).toBe('ready');
    // The failed turn's user message stays in the history; empty answers never go upstream.
    expect(transport.requests[1]?.messages.map((m) => m.content)).toEqual(['x', 'again']);
  });
});

/** Answers each chat.start whole, from a queue of scripts (one per step); records the requests. */
class ScriptedAnswers implements ChatTransport {
  requests: ChatRequest[] = [];
  constructor(private readonly answers: StreamEvent[][]) {}
  async start(request: ChatRequest) {
    this.requests.push(structuredClone(request));
    const script = this.answers.shift();
    if (!script) throw new Error('no answer scripted for this step');
    const events = [START, ...script].map((event, i) => ({ id: String(i + 1), event }));
    return { streamId: `s${this.requests.length}`, events };
  }
  stream(): () => void {
    throw new Error('every scripted answer is whole');
  }
}

const START: StreamEvent = { type: 'start', provider: 'openai', model: 'gpt-4o', keyFingerprint: 'abcd' };
const text = (t: string): StreamEvent[] => [{ type: 'delta', text: t }, { type: 'done', finishReason: 'stop' }];
/** An answer that calls one tool, its arguments split in two fragments. */
function calls(name: string, args: string, id = `call_${name}`): StreamEvent[] {
  const cut = Math.floor(args.length / 2);
  return [
    { type: 'tool_call_delta', index: 0, id, name, argumentsDelta: args.slice(0, cut) },
    { type: 'tool_call_delta', index: 0, argumentsDelta: args.slice(cut) },
    { type: 'done', finishReason: 'tool_calls' },
  ];
}
const ADD = tool<{ a: number; b: number }, number>({
  description: 'Adds two numbers',
  parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] },
  execute: ({ a, b }) => a + b,
});

describe('ChatController, issue 20 (tools, images, reasoning)', () => {
  it('issue 20: tool calls are assembled from tool_call_delta by index, partial until the answer ends', async () => {
    const transport = new ScriptedTransport();
    const chat = new ChatController({ transport, model: 'gpt-4o', tools: { get_time: {}, add: {} } });
    const done = chat.send('time and sum?');
    await opened(transport, 1);
    transport.emit(1, START);
    transport.emit(2, { type: 'tool_call_delta', index: 0, id: 'call_t', name: 'get_time', argumentsDelta: '{"tz":' });
    transport.emit(3, { type: 'tool_call_delta', index: 1, id: 'call_s', name: 'add', argumentsDelta: '{"a":1,' });
    transport.emit(4, { type: 'tool_call_delta', index: 0, argumentsDelta: '"UTC"}' });
    expect(chat.getSnapshot().status).toBe('streaming');
    expect(chat.getSnapshot().messages[1]?.toolCalls).toEqual([
      { id: 'call_t', name: 'get_time', argumentsText: '{"tz":"UTC"}', state: 'partial' },
      { id: 'call_s', name: 'add', argumentsText: '{"a":1,', state: 'partial' },
    ]);
    transport.emit(5, { type: 'tool_call_delta', index: 1, argumentsDelta: '"b":2}' });
    transport.emit(6, { type: 'done', finishReason: 'tool_calls' });
    await done;
    // No execute: both wait for addToolResult, and the chat is idle meanwhile.
    expect(chat.getSnapshot().status).toBe('ready');
    expect(chat.getSnapshot().messages[1]).toMatchObject({
      finishReason: 'tool_calls',
      toolCalls: [
        { id: 'call_t', name: 'get_time', state: 'call', args: { tz: 'UTC' } },
        { id: 'call_s', name: 'add', state: 'call', args: { a: 1, b: 2 } },
      ],
    });
  });

  it('issue 20: client-side tools run and their results go back by themselves until an answer calls none', async () => {
    const transport = new ScriptedAnswers([calls('add', '{"a":2,"b":3}'), text('It is 5.')]);
    const chat = new ChatController({ transport, model: 'gpt-4o', tools: { add: ADD }, request: { toolChoice: 'required', temperature: 0 } });
    await chat.send('2+3?');
    const state = chat.getSnapshot();
    expect(state.status).toBe('ready');
    expect(state.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'assistant']);
    expect(state.messages[1]?.toolCalls).toEqual([{ id: 'call_add', name: 'add', argumentsText: '{"a":2,"b":3}', args: { a: 2, b: 3 }, state: 'result', result: 5 }]);
    expect(state.messages[2]?.content).toBe('It is 5.');
    const tools = [{ type: 'function', name: 'add', description: 'Adds two numbers', parameters: ADD.parameters }];
    expect(transport.requests[0]).toEqual({ model: 'gpt-4o', temperature: 0, toolChoice: 'required', tools, messages: [{ role: 'user', content: '2+3?' }] });
    // The second step carries the call and its result; a forcing toolChoice applies to the first step only.
    expect(transport.requests[1]).toEqual({
      model: 'gpt-4o',
      temperature: 0,
      toolChoice: 'auto',
      tools,
      messages: [
        { role: 'user', content: '2+3?' },
        { role: 'assistant', content: '', toolCalls: [{ id: 'call_add', name: 'add', arguments: '{"a":2,"b":3}' }] },
        { role: 'tool', toolCallId: 'call_add', content: '5' },
      ],
    });
  });

  it('issue 20: maxSteps bounds the answers of one message, tool steps included', async () => {
    const transport = new ScriptedAnswers([calls('add', '{"a":1,"b":1}', 'c1'), calls('add', '{"a":2,"b":2}', 'c2'), calls('add', '{"a":3,"b":3}', 'c3')]);
    const chat = new ChatController({ transport, model: 'gpt-4o', tools: { add: ADD }, maxSteps: 2 });
    await chat.send('keep adding');
    expect(transport.requests).toHaveLength(2);
    const last = chat.getSnapshot().messages.at(-1)!;
    // The last step's tool still ran; its result waits for the next message.
    expect(last.toolCalls?.[0]).toMatchObject({ id: 'c2', state: 'result', result: 4 });
    expect(chat.getSnapshot().status).toBe('ready');
  });

  it('issue 20: a call without execute waits for addToolResult, then the conversation goes on', async () => {
    const transport = new ScriptedAnswers([calls('confirm', '{"action":"delete"}'), text('Deleted.')]);
    const chat = new ChatController({ transport, model: 'gpt-4o', tools: { confirm: { parameters: { type: 'object' } } } });
    await chat.send('delete it');
    expect(transport.requests).toHaveLength(1);
    expect(chat.getSnapshot()).toMatchObject({ status: 'ready' });
    expect(chat.getSnapshot().messages[1]?.toolCalls?.[0]).toMatchObject({ state: 'call', args: { action: 'delete' } });
    await chat.addToolResult({ toolCallId: 'unknown', result: 'ignored' });
    expect(transport.requests).toHaveLength(1);
    await chat.addToolResult({ toolCallId: 'call_confirm', result: { confirmed: true } });
    expect(transport.requests).toHaveLength(2);
    expect(transport.requests[1]?.messages.at(-1)).toEqual({ role: 'tool', toolCallId: 'call_confirm', content: '{"confirmed":true}' });
    expect(chat.getSnapshot().messages.at(-1)?.content).toBe('Deleted.');
    // Answered once: a second result for the same call changes nothing.
    await chat.addToolResult({ toolCallId: 'call_confirm', result: 'again' });
    expect(transport.requests).toHaveLength(2);
  });

  it('issue 20: a throwing execute, arguments that are not JSON and an unknown tool become errors the model gets back', async () => {
    const answer: StreamEvent[] = [
      { type: 'tool_call_delta', index: 0, id: 'c_throw', name: 'boom', argumentsDelta: '{}' },
      { type: 'tool_call_delta', index: 1, id: 'c_json', name: 'add', argumentsDelta: '{"a":' },
      { type: 'tool_call_delta', index: 2, id: 'c_none', name: 'nope', argumentsDelta: '{}' },
      { type: 'done', finishReason: 'tool_calls' },
    ];
    const transport = new ScriptedAnswers([answer, text('Sorry.')]);
    const boom = tool({ execute: () => Promise.reject(new Error('the clock is broken')) });
    const chat = new ChatController({ transport, model: 'gpt-4o', tools: { boom, add: ADD } });
    await chat.send('try');
    expect(chat.getSnapshot().messages[1]?.toolCalls?.map((c) => [c.state, c.error])).toEqual([
      ['error', 'the clock is broken'],
      ['error', 'the arguments are not valid JSON'],
      ['error', 'no tool named nope'],
    ]);
    expect(transport.requests[1]?.messages.slice(-3)).toEqual([
      { role: 'tool', toolCallId: 'c_throw', content: '{"error":"the clock is broken"}' },
      { role: 'tool', toolCallId: 'c_json', content: '{"error":"the arguments are not valid JSON"}' },
      { role: 'tool', toolCallId: 'c_none', content: '{"error":"no tool named nope"}' },
    ]);
    expect(chat.getSnapshot().messages.at(-1)?.content).toBe('Sorry.');
  });

  it('issue 20: images become image parts after the text; an invalid image is refused before any request', async () => {
    const png = 'data:image/png;base64,iVBORw0KGgo=';
    const transport = new ScriptedAnswers([text('A cat.'), text('Again.')]);
    const chat = new ChatController({ transport, model: 'gpt-4o' });
    await chat.send('what is this?', { images: [png, 'https://example.com/cat.jpg'] });
    expect(chat.getSnapshot().messages[0]).toMatchObject({ role: 'user', content: 'what is this?', images: [png, 'https://example.com/cat.jpg'] });
    expect(transport.requests[0]?.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'what is this?' },
          { type: 'image', url: png },
          { type: 'image', url: 'https://example.com/cat.jpg' },
        ],
      },
    ]);
    await chat.send('', { images: ['data:text/html;base64,PGI+'] });
    expect(chat.getSnapshot()).toMatchObject({ status: 'error' });
    expect(chat.getSnapshot().error).toMatchObject({ code: 'bad_request', message: expect.stringMatching(/^images\[0\]: /) });
    expect(chat.getSnapshot().messages).toHaveLength(2);
    // An image alone is a message too.
    await chat.send('  ', { images: [png] });
    expect(transport.requests[1]?.messages.at(-1)).toEqual({ role: 'user', content: [{ type: 'image', url: png }] });
  });

  it('issue 20: reasoning is kept apart from the answer text and not sent back', async () => {
    const transport = new ScriptedAnswers([[{ type: 'reasoning', text: 'Think ' }, { type: 'reasoning', text: 'hard.' }, ...text('Answer.')], text('Next.')]);
    const chat = new ChatController({ transport, model: 'gpt-4o', request: { reasoningEffort: 'high' } });
    await chat.send('why?');
    expect(chat.getSnapshot().messages[1]).toMatchObject({ content: 'Answer.', reasoning: 'Think hard.' });
    await chat.send('and?');
    expect(transport.requests[1]).toMatchObject({ reasoningEffort: 'high' });
    expect(transport.requests[1]?.messages[1]).toEqual({ role: 'assistant', content: 'Answer.' });
  });

  it('issue 20: stop() mid tool call keeps the text and the partial call; the next request leaves the call out', async () => {
    const transport = new ScriptedTransport();
    const chat = new ChatController({ transport, model: 'gpt-4o', tools: { add: ADD } });
    const done = chat.send('sum');
    await opened(transport, 1);
    transport.emit(1, { type: 'reasoning', text: 'Adding.' });
    transport.emit(2, { type: 'delta', text: 'Let me add.' });
    transport.emit(3, { type: 'tool_call_delta', index: 0, id: 'c1', name: 'add', argumentsDelta: '{"a":' });
    chat.stop();
    await done;
    const kept = chat.getSnapshot().messages[1]!;
    expect(kept).toMatchObject({ content: 'Let me add.', reasoning: 'Adding.', finishReason: 'aborted', toolCalls: [{ id: 'c1', state: 'partial', argumentsText: '{"a":' }] });
    expect(chat.getSnapshot().status).toBe('ready');
    void chat.send('again');
    expect(transport.requests[1]?.messages).toEqual([
      { role: 'user', content: 'sum' },
      { role: 'assistant', content: 'Let me add.' },
      { role: 'user', content: 'again' },
    ]);
  });

  it('issue 20: stop() while a tool runs aborts its signal and sends nothing more', async () => {
    let signal: AbortSignal | undefined;
    const slow = tool({ execute: (_args, context) => ((signal = context.signal), new Promise(() => {})) });
    const transport = new ScriptedAnswers([calls('slow', '{}'), text('never')]);
    const chat = new ChatController({ transport, model: 'gpt-4o', tools: { slow } });
    const done = chat.send('go');
    await expect.poll(() => signal).toBeDefined();
    expect(chat.getSnapshot().status).toBe('submitted');
    chat.stop();
    await done;
    expect(signal?.aborted).toBe(true);
    expect(chat.getSnapshot().status).toBe('ready');
    expect(transport.requests).toHaveLength(1);
  });

  it('issue 20: a new message answers calls still waiting with an error, so the request stays valid', async () => {
    const transport = new ScriptedAnswers([calls('confirm', '{}'), text('OK.')]);
    const chat = new ChatController({ transport, model: 'gpt-4o', tools: { confirm: {} } });
    await chat.send('delete');
    await chat.send('never mind');
    expect(chat.getSnapshot().messages[1]?.toolCalls?.[0]).toMatchObject({ state: 'error', error: expect.stringContaining('no result') });
    expect(transport.requests[1]?.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'user']);
  });
});
