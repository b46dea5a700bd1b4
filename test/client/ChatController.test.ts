import { describe, expect, it } from 'vitest';
import type { ChatRequest, StreamEvent } from '../../shared';
import { ChatController, KeyrackError, type ChatStreamHandlers, type ChatTransport } from '../../client/sdk';

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
