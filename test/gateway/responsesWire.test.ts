import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../server/providers/ProviderError';
import { relayResponsesStream } from '../../server/gateway/openai/relayResponsesStream';
import { promptMessagesOf, readResponsesRequest, upstreamResponsesBody, usageOfResponse } from '../../server/gateway/openai/responsesWire';

/** The /v1/responses body at the edge and the stream relay, without a gateway (issue 21). */

function refusal(body: unknown) {
  const read = readResponsesRequest(body);
  if (read.ok) throw new Error('expected a refusal');
  return read.refusal;
}

describe('issue 21: /v1/responses request fields', () => {
  it('takes the common fields, input as a string or as items', () => {
    const read = readResponsesRequest({
      model: 'gpt-4o',
      instructions: 'Be brief.',
      input: [
        { role: 'user', content: [{ type: 'input_text', text: 'hi' }, { type: 'input_image', image_url: 'https://example.com/a.png', detail: 'low' }] },
        { type: 'function_call', call_id: 'call_1', name: 'f', arguments: '{}', id: 'fc_1', status: 'completed' },
        { type: 'function_call_output', call_id: 'call_1', output: '42' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'ok', annotations: [] }], id: 'msg_1', status: 'completed' },
        { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'enc' },
      ],
      max_output_tokens: 100,
      temperature: 0.5,
      top_p: 1,
      tools: [{ type: 'function', name: 'f', parameters: { type: 'object' }, strict: true }],
      tool_choice: { type: 'function', name: 'f' },
      parallel_tool_calls: false,
      text: { format: { type: 'json_schema', name: 'x', schema: { type: 'object' }, strict: true }, verbosity: 'low' },
      reasoning: { effort: 'low', summary: 'auto' },
      stream: true,
      stream_options: { include_obfuscation: false },
      truncation: 'auto',
      include: ['reasoning.encrypted_content'],
      metadata: { app: 'demo' },
      store: false,
      background: false,
      service_tier: 'auto',
      user: 'end-user-1',
    });
    expect(read.ok).toBe(true);
    expect(readResponsesRequest({ model: 'gpt-4o', input: 'hello' }).ok).toBe(true);
  });

  it('refuses an unknown field, naming it', () => {
    expect(refusal({ model: 'gpt-4o', input: 'x', frobnicate: true })).toEqual({ param: 'frobnicate', message: 'frobnicate: unknown parameter' });
  });

  it('refuses what keeps state at one provider account, naming the field', () => {
    expect(refusal({ model: 'gpt-4o', input: 'x', store: true }).param).toBe('store');
    expect(refusal({ model: 'gpt-4o', input: 'x', previous_response_id: 'resp_1' })).toMatchObject({ param: 'previous_response_id', message: expect.stringContaining('one key') });
    expect(refusal({ model: 'gpt-4o', input: 'x', conversation: 'conv_1' }).param).toBe('conversation');
    expect(refusal({ model: 'gpt-4o', input: 'x', background: true }).param).toBe('background');
    expect(refusal({ model: 'gpt-4o', input: 'x', prompt: { id: 'pmpt_1' } }).param).toBe('prompt');
    expect(refusal({ model: 'gpt-4o', input: [{ type: 'item_reference', id: 'msg_1' }] }).param).toBe('input[0].id');
    expect(refusal({ model: 'gpt-4o', input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://x/y.png', file_id: 'file_1' }] }] }).param).toBe('input[0].content[0].file_id');
  });

  it('refuses what it cannot meter: hosted tools, other service tiers', () => {
    expect(refusal({ model: 'gpt-4o', input: 'x', tools: [{ type: 'web_search' }] })).toMatchObject({ param: 'tools[0].type', message: expect.stringContaining('hosted tools') });
    expect(refusal({ model: 'gpt-4o', input: 'x', service_tier: 'priority' }).param).toBe('service_tier');
  });

  it('checks types, naming the field', () => {
    expect(refusal({ model: 'gpt-4o', input: 'x', temperature: 'hot' }).param).toBe('temperature');
    expect(refusal({ model: 'gpt-4o', input: 'x', max_output_tokens: -1 }).param).toBe('max_output_tokens');
    expect(refusal({ model: 'gpt-4o', input: [{ role: 'robot', content: 'x' }] }).param).toBe('input[0].role');
    expect(refusal({ model: 'gpt-4o', input: [{ type: 'function_call_output', output: 'x' }] }).param).toBe('input[0].call_id');
    expect(refusal({ input: 'x' }).param).toBe('model');
    expect(refusal([]).param).toBe('body');
  });

  it('sends the upstream id, store: false where the provider would store, no end-user ids', () => {
    const body = { model: 'gpt-4o', input: 'x', user: 'u1', safety_identifier: 's1', metadata: { a: 'b' } };
    expect(JSON.parse(upstreamResponsesBody(body, 'gpt-4o-2024-08-06', true))).toEqual({ model: 'gpt-4o-2024-08-06', input: 'x', metadata: { a: 'b' }, store: false });
    expect(JSON.parse(upstreamResponsesBody(body, 'llama', false))).toEqual({ model: 'llama', input: 'x', metadata: { a: 'b' } });
  });

  it('counts instructions, tools, calls and outputs in the prompt', () => {
    const read = readResponsesRequest({
      model: 'gpt-4o',
      instructions: 'Be brief.',
      tools: [{ type: 'function', name: 'f' }],
      input: [
        { role: 'user', content: 'weather?' },
        { type: 'function_call', call_id: 'c', name: 'f', arguments: '{"a":1}' },
        { type: 'function_call_output', call_id: 'c', output: 'sunny' },
      ],
    });
    if (!read.ok) throw new Error('refused');
    const text = JSON.stringify(promptMessagesOf(read.wire));
    for (const piece of ['Be brief.', '"name":"f"', 'weather?', '{\\"a\\":1}', 'sunny']) expect(text).toContain(piece);
  });

  it('reads usage off a response object', () => {
    expect(usageOfResponse({ usage: { input_tokens: 10, output_tokens: 5, input_tokens_details: { cached_tokens: 4 }, output_tokens_details: { reasoning_tokens: 2 }, total_tokens: 15 } })).toEqual({
      inputTokens: 10,
      outputTokens: 5,
      cachedInputTokens: 4,
      reasoningTokens: 2,
    });
    expect(usageOfResponse({ usage: null })).toBeNull();
  });
});

async function* bytes(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const part of parts) yield new TextEncoder().encode(part);
}

const frame = (data: Record<string, unknown>) => `event: ${String(data.type)}\ndata: ${JSON.stringify(data)}\n\n`;

describe('issue 21: the Responses stream relay', () => {
  it('passes events as they come, the model set to the catalog id, usage from response.completed', async () => {
    const delta = frame({ type: 'response.output_text.delta', sequence_number: 1, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'h\u00e9 "x"', logprobs: [] });
    const written: string[] = [];
    let produced = 0;
    const relayed = await relayResponsesStream(
      bytes(
        frame({ type: 'response.created', sequence_number: 0, response: { id: 'resp_1', model: 'gpt-4o-2024-08-06', usage: null } }),
        delta.slice(0, 20),
        delta.slice(20),
        frame({ type: 'response.completed', sequence_number: 2, response: { id: 'resp_1', model: 'gpt-4o-2024-08-06', usage: { input_tokens: 3, output_tokens: 2 } } }),
      ),
      'sk-test-relay',
      'gpt-4o',
      { write: (f) => void written.push(f), produced: (n) => void (produced += n) },
    );
    expect(written[1]).toBe(delta);
    expect(JSON.parse(written[0]!.split('data: ')[1]!).response.model).toBe('gpt-4o');
    expect(JSON.parse(written[2]!.split('data: ')[1]!).response.model).toBe('gpt-4o');
    expect(relayed).toEqual({ usage: { inputTokens: 3, outputTokens: 2, cachedInputTokens: 0, reasoningTokens: 0 } });
    expect(written).toHaveLength(3);
    // 'hé "x"' as sent: h, é (2 bytes), space, and the escaped quotes.
    expect(produced).toBe(Buffer.byteLength('h\u00e9 \\"x\\"'));
  });

  it('throws a cut stream (no terminal event) as a transient ProviderError', async () => {
    const relay = relayResponsesStream(bytes(frame({ type: 'response.created', sequence_number: 0, response: { model: 'm' } })), 'sk-test-relay', 'gpt-4o', { write: () => undefined, produced: () => undefined });
    await expect(relay).rejects.toSatisfy((error) => ProviderError.isInstance(error) && error.kind === 'transient');
  });
});
