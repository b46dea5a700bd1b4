import { TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamEvent } from '../../shared';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/** A Gemini model with tools through the whole gateway (demo mode: the mock's Gemini wire), over tRPC (issue 20). */

let gw: TestGateway;
let alice: string;
beforeAll(async () => {
  gw = await startTestGateway({ models: [testModel('gemini-2.5-flash', 'google')] });
  alice = await gw.token('alice');
});
afterAll(() => gw?.close());

const weather = { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };

function events(streamId: string): Promise<StreamEvent[]> {
  const client = gw.trpc(alice);
  const out: StreamEvent[] = [];
  return new Promise((resolve, reject) => {
    client.chat.stream.subscribe({ streamId }, { onData: (tracked) => void out.push(tracked.data), onError: reject, onComplete: () => resolve(out) });
  });
}

describe('Gemini tools through the gateway (issue 20)', () => {
  it('issue 20: chat.start with tools on a Gemini model streams the call back as tool_call_delta and finishes tool_calls', async () => {
    const { streamId } = await gw.trpc(alice).chat.start.mutate({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'weather in Paris?' }], tools: [weather], toolChoice: 'required' });
    const got = await events(streamId);
    const call = got.find((e) => e.type === 'tool_call_delta');
    expect(call).toMatchObject({ type: 'tool_call_delta', index: 0, name: 'get_weather', argumentsDelta: '{"city":"mock"}' });
    expect(got.at(-1)).toEqual({ type: 'done', finishReason: 'tool_calls' });

    // The result goes back; the answer is text.
    const id = call?.type === 'tool_call_delta' ? (call.id as string) : '';
    const next = await gw.trpc(alice).chat.start.mutate({
      model: 'gemini-2.5-flash',
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        { role: 'assistant', content: '', toolCalls: [{ id, name: 'get_weather', arguments: '{"city":"mock"}' }] },
        { role: 'tool', toolCallId: id, content: 'sunny' },
      ],
      tools: [weather],
    });
    const answer = await events(next.streamId);
    expect(answer.map((e) => (e.type === 'delta' ? e.text : '')).join('')).toMatch(/^Mock answer to: the tool result weather in Paris/);
    expect(answer.at(-1)).toEqual({ type: 'done', finishReason: 'stop' });
  });

  it('issue 20: parallelToolCalls false on a Gemini model is a 400 naming the field, with no upstream call', async () => {
    const before = gw.gateway.mock?.stats().total.requests;
    const error = await gw
      .trpc(alice)
      .chat.start.mutate({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'x' }], tools: [weather], parallelToolCalls: false })
      .then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    expect((error as TRPCClientError<any>).data).toMatchObject({ httpStatus: 400, gatewayCode: 'bad_request' });
    expect((error as Error).message).toContain('field parallelToolCalls');
    expect(gw.gateway.mock?.stats().total.requests).toBe(before);
  });
});
