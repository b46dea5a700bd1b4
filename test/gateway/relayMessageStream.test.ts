import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../server/providers/ProviderError';
import { relayMessageStream, type StreamRelayState } from '../../server/gateway/anthropic/relayMessageStream';
import type { StreamedResponse } from '../../server/streams/StreamedResponse';

/**
 * Issue 21: the /v1/messages stream relay, over bodies cut at every byte (the mock provider
 * writes a stream in one piece; the network does not).
 */

const frame = (type: string, data: unknown) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
const START = frame('message_start', {
  type: 'message_start',
  message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-20250514', content: [], stop_reason: null, usage: { input_tokens: 12, cache_read_input_tokens: 30, output_tokens: 1 } },
});
const REST =
  frame('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }) +
  'event: ping\ndata: {"type": "ping"}\n\n' +
  frame('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello é 😀' } }) +
  frame('content_block_stop', { type: 'content_block_stop', index: 0 }) +
  frame('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 7 } });
const STOP = frame('message_stop', { type: 'message_stop' });

/** The stream's bytes in pieces of `size` bytes (multi-byte characters split too). */
async function* bytes(text: string, size: number): AsyncGenerator<Uint8Array> {
  const all = new TextEncoder().encode(text);
  for (let i = 0; i < all.length; i += size) yield all.slice(i, i + size);
}

function sink(): { stream: StreamedResponse; written: () => string } {
  let out = '';
  const stream = { write: (text: string) => ((out += text), true), drained: () => Promise.resolve(), end: () => undefined } as unknown as StreamedResponse;
  return { stream, written: () => out };
}

const freshState = (): StreamRelayState => ({ usage: {}, stopped: false, errorRelayed: false, deltaChars: 0 });

describe('issue 21: relayMessageStream', () => {
  for (const size of [1, 7, 4096]) {
    it(`relays every byte as sent but message_start's model, and reads usage (pieces of ${size} bytes)`, async () => {
      const { stream, written } = sink();
      const state = freshState();
      let opened = 0;
      await relayMessageStream({ body: bytes(`: comment first\n\n${START}${REST}${STOP}`, size), apiKey: 'sk-test-relay-0001', clientModel: 'claude-sonnet-4', stream, open: () => void opened++, state });
      expect(opened).toBe(1);
      const start = JSON.parse(START.split('data: ')[1]!) as { message: { model: string } };
      start.message.model = 'claude-sonnet-4';
      expect(written()).toBe(`: comment first\n\nevent: message_start\ndata: ${JSON.stringify(start)}\n\n${REST}${STOP}`);
      expect(state).toMatchObject({ stopped: true, errorRelayed: false, usage: { input_tokens: 12, cache_read_input_tokens: 30, output_tokens: 7 } });
      expect(state.deltaChars).toBe('Hello é 😀'.length);
    });
  }

  it('an error as the first event is thrown before anything is written (another key may serve)', async () => {
    const { stream, written } = sink();
    let opened = 0;
    const error = await relayMessageStream({
      body: bytes(frame('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }), 5),
      apiKey: 'sk-test-relay-0001',
      clientModel: 'claude-sonnet-4',
      stream,
      open: () => void opened++,
      state: freshState(),
    }).catch((e: unknown) => e);
    expect(ProviderError.isInstance(error) && error.kind).toBe('transient');
    expect(opened).toBe(0);
    expect(written()).toBe('');
  });

  it('a stream that ends before message_stop is a transient failure after it opened', async () => {
    const { stream } = sink();
    const state = freshState();
    const error = await relayMessageStream({ body: bytes(START + REST, 64), apiKey: 'sk-test-relay-0001', clientModel: 'm', stream, open: () => undefined, state }).catch((e: unknown) => e);
    expect(ProviderError.isInstance(error) && error.providerCode).toBe('truncated');
    expect(state.usage.output_tokens).toBe(7);
  });

  it('an error event after the start is relayed as it came, then thrown for the key\'s report', async () => {
    const { stream, written } = sink();
    const state = freshState();
    const tail = frame('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    const error = await relayMessageStream({ body: bytes(START + tail, 3), apiKey: 'sk-test-relay-0001', clientModel: 'm', stream, open: () => undefined, state }).catch((e: unknown) => e);
    expect(ProviderError.isInstance(error)).toBe(true);
    expect(state.errorRelayed).toBe(true);
    expect(written().endsWith(tail)).toBe(true);
  });
});
