import { describe, expectTypeOf, it } from 'vitest';
import type { FinishReason, StreamEvent } from '../../shared';
import {
  tool,
  useChat,
  type ChatRequestOptions,
  type KeyrackClient,
  type KeyrackMessage,
  type KeyrackToolCall,
  type RouterInputs,
  type RouterOutputs,
  type ToolCallState,
  type UseChatResult,
} from '../../client/sdk';

/**
 * Issue 20's surface in types: useChat's tools, maxSteps, request options, attachments and
 * addToolResult; messages with tool calls and reasoning; chat.start/chat.complete carrying the
 * whole request model, typed from the router.
 */

declare const chat: UseChatResult;
declare const client: KeyrackClient;
declare const message: KeyrackMessage;

describe('useChat tools', () => {
  it('takes tools, maxSteps and request options', () => {
    useChat({
      model: 'gpt-4o',
      maxSteps: 3,
      tools: {
        get_time: tool<{ timezone?: string }, { time: string }>({
          description: 'The current time',
          parameters: { type: 'object', properties: { timezone: { type: 'string' } } },
          execute: (args, { toolCallId, signal }) => {
            expectTypeOf(args).toEqualTypeOf<{ timezone?: string }>();
            expectTypeOf(toolCallId).toEqualTypeOf<string>();
            expectTypeOf(signal).toEqualTypeOf<AbortSignal>();
            return { time: new Date().toISOString() };
          },
        }),
        confirm: { description: 'Asks the user' },
      },
      request: { toolChoice: 'auto', temperature: 0.2, reasoningEffort: 'low', responseFormat: { type: 'json_object' }, stop: ['END'], seed: 1 },
    });
    expectTypeOf(chat.addToolResult).parameter(0).toEqualTypeOf<{ toolCallId: string; result: unknown }>();
    expectTypeOf<ChatRequestOptions>().not.toHaveProperty('messages');
  });

  it('messages carry tool calls, reasoning and images', () => {
    expectTypeOf(message.toolCalls).toEqualTypeOf<readonly KeyrackToolCall[] | undefined>();
    expectTypeOf(message.reasoning).toEqualTypeOf<string | undefined>();
    expectTypeOf(message.images).toEqualTypeOf<readonly string[] | undefined>();
    expectTypeOf<KeyrackToolCall['state']>().toEqualTypeOf<ToolCallState>();
    expectTypeOf<ToolCallState>().toEqualTypeOf<'partial' | 'call' | 'result' | 'error'>();
    expectTypeOf<KeyrackMessage['finishReason']>().toEqualTypeOf<FinishReason | undefined>();
  });

  it('refuses wrong input', () => {
    // @ts-expect-error maxSteps is a number
    useChat({ model: 'gpt-4o', maxSteps: '3' });
    // @ts-expect-error a tool's parameters are a JSON-schema object
    useChat({ model: 'gpt-4o', tools: { f: { parameters: 'object' } } });
    // @ts-expect-error toolChoice is auto | none | required | { type: 'function', name }
    useChat({ model: 'gpt-4o', request: { toolChoice: 'always' } });
    // @ts-expect-error the request's messages are the conversation's, not options
    useChat({ model: 'gpt-4o', request: { messages: [] } });
    // @ts-expect-error images are URLs (strings)
    void chat.send('look', { images: [new Blob()] });
    // @ts-expect-error addToolResult names the call
    void chat.addToolResult({ result: 1 });
    // @ts-expect-error tool results live on the assistant's calls: no tool-role messages
    useChat({ model: 'gpt-4o', initialMessages: [{ id: '1', role: 'tool', content: 'x' }] });
    // @ts-expect-error typed arguments are checked in execute
    tool<{ a: number }>({ execute: (args) => args.b });
  });
});

describe('the router carries the whole request model', () => {
  it('chat.start and chat.complete take tools, images and the tool roles', () => {
    void client.chat.start.mutate({
      model: 'gpt-4o',
      messages: [
        { role: 'developer', content: 'Use tools.' },
        { role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image', url: 'https://example.com/a.png', detail: 'low' }] },
        { role: 'assistant', toolCalls: [{ id: 'c1', name: 'f', arguments: '{}' }] },
        { role: 'tool', toolCallId: 'c1', content: '42' },
      ],
      tools: [{ name: 'f', parameters: { type: 'object' } }],
      toolChoice: { type: 'function', name: 'f' },
      parallelToolCalls: true,
      responseFormat: { type: 'json_schema', name: 'out', schema: { type: 'object' }, strict: true },
      topP: 0.9,
      reasoningEffort: 'medium',
    });
    expectTypeOf<RouterInputs['chat']['start']>().toEqualTypeOf<RouterInputs['chat']['complete']>();
  });

  it('chat.complete answers with tool calls and reasoning; the stream with their events', () => {
    expectTypeOf<RouterOutputs['chat']['complete']['toolCalls']>().toEqualTypeOf<{ id: string; name: string; arguments: string }[]>();
    expectTypeOf<RouterOutputs['chat']['complete']['reasoning']>().toEqualTypeOf<string>();
    expectTypeOf<Extract<StreamEvent, { type: 'tool_call_delta' }>>().toEqualTypeOf<{ type: 'tool_call_delta'; index: number; id?: string | undefined; name?: string | undefined; argumentsDelta: string }>();
    expectTypeOf(client.chat.stream.subscribe).parameter(1).toHaveProperty('onData').exclude<undefined>().parameter(0).toHaveProperty('data').toEqualTypeOf<StreamEvent>();
  });

  it('refuses wrong input', () => {
    // @ts-expect-error a tool message needs the id of the call it answers
    void client.chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'tool', content: '42' }] });
    // @ts-expect-error image parts carry a url
    void client.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: [{ type: 'image', data: 'x' }] }] });
    // @ts-expect-error responseFormat json_schema needs a schema
    void client.chat.complete.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], responseFormat: { type: 'json_schema', name: 'x' } });
  });
});
