import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chatRequestSchema, messageText, REASONING_EFFORTS, type ChatMessageInput } from '../../shared';
import type { AnthropicContentBlock, AnthropicMessagesRequestBody } from '../../server/providers/anthropic/anthropicMessagesApi';
import { convertToAnthropicRequest } from '../../server/providers/anthropic/convertToAnthropicRequest';
import { ProviderError } from '../../server/providers/ProviderError';
import type { UpstreamRequest } from '../../server/providers/types';

/** Random valid requests convert without loss: convert, read the essential parts back, compare (issue 20). */

// Text without blank lines, so joined turns ('\n\n') split back into their messages.
const text = fc.string({ unit: fc.constantFrom('a', 'b', 'z', ' ', '1', 'é', '{', '"'), maxLength: 12 });
const image = fc.oneof(
  fc.constantFrom('image/png', 'image/jpeg', 'image/gif', 'image/webp').chain((type) => fc.base64String({ minLength: 4, maxLength: 16 }).filter((s) => s.length > 0).map((data) => `data:${type};base64,${data}`)),
  fc.webUrl({ validSchemes: ['https'] }).filter((url) => url.length < 2000 && !/\s/.test(url)),
);
const userContent = fc.oneof(
  text,
  fc.array(fc.oneof(text.map((t) => ({ type: 'text' as const, text: t })), image.map((url) => ({ type: 'image' as const, url }))), { minLength: 1, maxLength: 4 }),
);
const jsonArgs = fc.dictionary(fc.constantFrom('city', 'n', 'ok', 'list'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });
const toolNames = ['get_weather', 'get_time', 'lookup'] as const;

type UserContent = Extract<ChatMessageInput, { role: 'user' }>['content'];
type Turn = { kind: 'system'; text: string } | { kind: 'user'; content: UserContent } | { kind: 'assistant'; text: string; calls: { name: string; args: Record<string, unknown> }[]; results: string[] };
const turn: fc.Arbitrary<Turn> = fc.oneof(
  text.map((t) => ({ kind: 'system' as const, text: t })),
  userContent.map((content) => ({ kind: 'user' as const, content })),
  fc
    .array(fc.record({ name: fc.constantFrom(...toolNames), args: jsonArgs }), { maxLength: 3 })
    .chain((calls) => fc.record({ kind: fc.constant('assistant' as const), text, calls: fc.constant(calls), results: fc.array(text, { minLength: calls.length, maxLength: calls.length }) })),
);

/** A conversation that opens with a user turn, each assistant call answered by a tool message right after. */
const conversation = fc.tuple(userContent, fc.array(turn, { maxLength: 8 })).map(([first, turns]) => {
  const messages: ChatMessageInput[] = [{ role: 'user', content: first }];
  for (const [t, item] of turns.entries()) {
    if (item.kind === 'system') messages.push({ role: t % 2 ? 'system' : 'developer', content: item.text });
    else if (item.kind === 'user') messages.push({ role: 'user', content: item.content });
    else {
      const ids = item.calls.map((_, j) => `call_${t}_${j}`);
      messages.push({ role: 'assistant', content: item.text, ...(item.calls.length ? { toolCalls: item.calls.map((c, j) => ({ id: ids[j]!, name: c.name, arguments: JSON.stringify(c.args) })) } : {}) });
      for (const [j, id] of ids.entries()) messages.push({ role: 'tool', toolCallId: id, content: j % 2 ? [{ type: 'text', text: item.results[j]! }] : item.results[j]! });
    }
  }
  return messages;
});

const request = fc
  .record(
    {
      messages: conversation,
      maxTokens: fc.integer({ min: 1, max: 100_000 }),
      temperature: fc.double({ min: 0, max: 2, noNaN: true }),
      topP: fc.double({ min: 0, max: 1, noNaN: true }),
      stop: fc.array(fc.string({ minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 4 }),
      tools: fc.constant(toolNames.map((name, i) => ({ name, ...(i === 1 ? {} : { description: `about ${name}`, parameters: { type: 'object', properties: { city: { type: 'string' } } } }) }))),
      toolChoice: fc.constantFrom('auto' as const, 'none' as const, 'required' as const, { type: 'function' as const, name: 'lookup' }),
      parallelToolCalls: fc.boolean(),
    },
    { requiredKeys: ['messages'] },
  )
  .map((r) => ({ model: 'claude-sonnet-4-5', ...r }))
  .filter((r) => (r.toolChoice === undefined && r.parallelToolCalls === undefined) || r.tools !== undefined || r.toolChoice === 'none')
  .filter((r) => r.parallelToolCalls === undefined || r.tools !== undefined);

type Item = { kind: 'text'; role: string; text: string } | { kind: 'image'; url: string } | { kind: 'tool_use'; id: string; name: string; input: unknown } | { kind: 'tool_result'; id: string; content: string };

/** The conversation's essentials as the converted body says them, in order. */
function readBack(body: AnthropicMessagesRequestBody): Item[] {
  const items: Item[] = [];
  const texts = (role: string, s: string) => {
    for (const piece of s.split('\n\n')) if (piece) items.push({ kind: 'text', role, text: piece });
  };
  for (const m of body.messages) {
    if (typeof m.content === 'string') texts(m.role, m.content);
    else for (const b of m.content as AnthropicContentBlock[]) {
      if (b.type === 'text') texts(m.role, b.text);
      else if (b.type === 'image') items.push({ kind: 'image', url: b.source.type === 'url' ? b.source.url : `data:${b.source.media_type};base64,${b.source.data}` });
      else if (b.type === 'tool_use') items.push({ kind: 'tool_use', id: b.id, name: b.name, input: b.input });
      else items.push({ kind: 'tool_result', id: b.tool_use_id, content: b.content });
    }
  }
  return items;
}

/** The same essentials straight from the request (tool results lead their user turn, as Anthropic wants them). */
function expected(req: UpstreamRequest): Item[] {
  const items: Item[] = [];
  let userTurn: { results: Item[]; rest: Item[] } | null = null;
  const flush = () => {
    if (userTurn) items.push(...userTurn.results, ...userTurn.rest);
    userTurn = null;
  };
  for (const m of req.messages) {
    if (m.role === 'system' || m.role === 'developer') continue;
    if (m.role === 'assistant') {
      flush();
      if (m.content) items.push({ kind: 'text', role: 'assistant', text: m.content });
      for (const c of m.toolCalls ?? []) items.push({ kind: 'tool_use', id: c.id, name: c.name, input: JSON.parse(c.arguments) });
      continue;
    }
    const turn: { results: Item[]; rest: Item[] } = (userTurn ??= { results: [], rest: [] });
    if (m.role === 'tool') turn.results.push({ kind: 'tool_result', id: m.toolCallId, content: messageText(m) });
    else if (typeof m.content === 'string') {
      if (m.content) turn.rest.push({ kind: 'text', role: 'user', text: m.content });
    } else for (const p of m.content) {
      if (p.type === 'text') {
        if (p.text) turn.rest.push({ kind: 'text', role: 'user', text: p.text });
      } else turn.rest.push({ kind: 'image', url: p.url });
    }
  }
  flush();
  return items;
}

describe('Anthropic conversion, property (issue 20)', () => {
  it('issue 20: random valid requests convert without loss (messages, tool calls and results, images, tools, sampling)', () => {
    fc.assert(
      fc.property(request, (input) => {
        const parsed = chatRequestSchema.safeParse(input);
        fc.pre(parsed.success);
        const { model: _model, ...rest } = parsed.data!;
        const req: UpstreamRequest = { provider: 'anthropic', model: 'claude-sonnet-4-5', ...rest };
        const body = convertToAnthropicRequest(req);

        expect(readBack(body)).toEqual(expected(req));
        // The API's own rules: user first, roles alternate.
        expect(body.messages[0]?.role).toBe('user');
        for (let i = 1; i < body.messages.length; i += 1) expect(body.messages[i]!.role).not.toBe(body.messages[i - 1]!.role);
        const instructions = req.messages.filter((m) => m.role === 'system' || m.role === 'developer').map(messageText);
        expect(body.system).toBe(instructions.length ? instructions.join('\n\n') : undefined);

        expect(body.max_tokens).toBe(req.maxTokens ?? 4096);
        expect(body.temperature).toBe(req.temperature === undefined ? undefined : Math.min(1, req.temperature));
        expect(body.top_p).toBe(req.topP);
        expect(body.stop_sequences).toEqual(req.stop);
        expect(body.tools?.map((t) => t.name)).toEqual(req.tools?.map((t) => t.name));
        for (const [i, tool] of (req.tools ?? []).entries()) {
          expect(body.tools?.[i]?.description).toBe(tool.description);
          expect(body.tools?.[i]?.input_schema).toEqual(tool.parameters ?? { type: 'object', properties: {} });
        }
        if (req.tools) {
          const type = { auto: 'auto', none: 'none', required: 'any' }[typeof req.toolChoice === 'string' ? req.toolChoice : 'auto'];
          expect(body.tool_choice?.type ?? 'auto').toBe(typeof req.toolChoice === 'object' ? 'tool' : type);
          expect(body.tool_choice && 'disable_parallel_tool_use' in body.tool_choice ? body.tool_choice.disable_parallel_tool_use : undefined).toBe(
            req.parallelToolCalls === false && req.toolChoice !== 'none' ? true : undefined,
          );
        }
      }),
      { numRuns: 300 },
    );
  });

  it('issue 20: any effort on any model thinks within max_tokens (budget below it), or is refused naming maxTokens', () => {
    const models = fc.constantFrom('claude-3-7-sonnet-20250219', 'claude-sonnet-4-20250514', 'claude-opus-4-1', 'claude-haiku-4-5', 'claude-sonnet-4-6', 'claude-opus-4-7', 'claude-future-9');
    fc.assert(
      fc.property(models, fc.constantFrom(...REASONING_EFFORTS), fc.option(fc.integer({ min: 1, max: 40_000 }), { nil: undefined }), (model, reasoningEffort, maxTokens) => {
        const req: UpstreamRequest = { provider: 'anthropic', model, messages: [{ role: 'user', content: 'x' }], reasoningEffort, ...(maxTokens !== undefined ? { maxTokens } : {}) };
        let body: AnthropicMessagesRequestBody;
        try {
          body = convertToAnthropicRequest(req);
        } catch (error) {
          expect(ProviderError.isInstance(error) && error.param).toBe('maxTokens');
          expect(maxTokens).toBeDefined();
          return;
        }
        if (reasoningEffort === 'none') expect(body.thinking).toBeUndefined();
        else if (body.thinking?.type === 'enabled') {
          expect(body.thinking.budget_tokens).toBeGreaterThanOrEqual(1024);
          expect(body.thinking.budget_tokens).toBeLessThan(body.max_tokens);
        } else expect(body).toMatchObject({ thinking: { type: 'adaptive' }, output_config: { effort: expect.stringMatching(/^(low|medium|high)$/) } });
      }),
      { numRuns: 200 },
    );
  });

  it('issue 20: seed and the penalties are refused naming the field, whatever else the request carries', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('seed', 'presencePenalty', 'frequencyPenalty'),
        fc.double({ min: -2, max: 2, noNaN: true }),
        fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
        (field, value, topP) => {
          const req = { provider: 'anthropic', model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'x' }], topP, [field]: field === 'seed' ? Math.round(value) : value } as UpstreamRequest;
          expect(() => convertToAnthropicRequest(req)).toThrow(expect.objectContaining({ kind: 'bad_request', param: field }));
        },
      ),
      { numRuns: 50 },
    );
  });
});
