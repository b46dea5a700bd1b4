import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chatRequestSchema, type ChatMessage, type Tool } from '../../shared';
import { convertToGeminiRequest, GEMINI_THINKING_BUDGETS } from '../../server/providers/gemini/convertToGeminiRequest';
import type { GeminiGenerateContentRequestBody } from '../../server/providers/gemini/geminiApi';
import { ProviderError } from '../../server/providers/ProviderError';
import type { UpstreamRequest } from '../../server/providers/types';

/**
 * Random valid requests convert to Gemini without loss: reading the Gemini body back gives every
 * text, image, call, result and setting of the request (issue 20). Random requests with one thing
 * Gemini cannot take are refused with a 400 naming it.
 */

const NAMES = ['get_weather', 'get_time', 'search', 'add_numbers'];
const text = fc.string({ maxLength: 12 });
const leafSchema = fc.record(
  { type: fc.constantFrom('string', 'integer', 'number', 'boolean'), description: text },
  { requiredKeys: ['type'] },
);
const objectSchema = fc
  .dictionary(fc.constantFrom('a', 'b', 'city', 'n'), leafSchema, { maxKeys: 3 })
  .chain((properties) =>
    fc.record({ type: fc.constant('object'), properties: fc.constant(properties), required: fc.subarray(Object.keys(properties)), additionalProperties: fc.boolean() }, { requiredKeys: ['type', 'properties'] }),
  );
const image = fc.oneof(
  fc.tuple(fc.constantFrom('png', 'jpeg', 'webp'), fc.base64String({ minLength: 4, maxLength: 24 })).map(([type, data]) => `data:image/${type};base64,${data}`),
  fc.tuple(fc.constantFrom('png', 'jpg', 'JPEG', 'webp'), fc.webSegment()).map(([ext, name]) => `https://example.com/${name || 'x'}.${ext}`),
);
const userContent = fc.oneof(
  text,
  fc.array(fc.oneof(text.map((t) => ({ type: 'text' as const, text: t })), image.map((url) => ({ type: 'image' as const, url }))), { minLength: 1, maxLength: 3 }),
);
const args = fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });

type Op =
  | { kind: 'system' | 'developer'; text: string }
  | { kind: 'user'; content: string | ({ type: 'text'; text: string } | { type: 'image'; url: string })[] }
  | { kind: 'assistant'; text: string; calls: { name: string; args: Record<string, unknown> | null; generated: boolean }[] }
  | { kind: 'tool'; pick: number; result: string };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('system' as const, 'developer' as const), text }),
  fc.record({ kind: fc.constant('user' as const), content: userContent }),
  fc.record({
    kind: fc.constant('assistant' as const),
    text,
    calls: fc.array(fc.record({ name: fc.constantFrom(...NAMES), args: fc.option(args, { nil: null }), generated: fc.boolean() }), { maxLength: 3 }),
  }),
  fc.record({ kind: fc.constant('tool' as const), pick: fc.nat(), result: fc.oneof(text, args.map((a) => JSON.stringify(a)), fc.jsonValue({ maxDepth: 1 }).map((v) => JSON.stringify(v))) }),
);

/** Folds ops into a conversation whose tool messages answer earlier calls. */
function conversation(ops: Op[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  const ids: string[] = [];
  for (const o of ops) {
    if (o.kind === 'system' || o.kind === 'developer') messages.push({ role: o.kind, content: o.text });
    else if (o.kind === 'user') messages.push({ role: 'user', content: o.content });
    else if (o.kind === 'assistant') {
      const toolCalls = o.calls.map((c) => {
        const id = `${c.generated ? 'gcall_r' : 'call_'}${ids.length}`;
        ids.push(id);
        return { id, name: c.name, arguments: c.args === null ? '' : JSON.stringify(c.args) };
      });
      messages.push(toolCalls.length > 0 ? { role: 'assistant', content: o.text, toolCalls } : { role: 'assistant', content: o.text });
    } else if (o.kind === 'tool' && ids.length > 0) messages.push({ role: 'tool', toolCallId: ids[o.pick % ids.length] as string, content: o.result });
  }
  return messages.length > 0 ? messages : [{ role: 'user', content: 'hi' }];
}

const validRequest: fc.Arbitrary<UpstreamRequest> = fc
  .record(
    {
      ops: fc.array(op, { minLength: 1, maxLength: 8 }),
      tools: fc.uniqueArray(fc.record({ name: fc.constantFrom(...NAMES), description: text, parameters: objectSchema, strict: fc.boolean() }, { requiredKeys: ['name'] }), { selector: (t) => t.name, minLength: 1, maxLength: 4 }),
      withTools: fc.boolean(),
      toolChoice: fc.constantFrom('auto', 'none', 'required', 'named', undefined),
      parallelToolCalls: fc.constantFrom(true, undefined),
      maxTokens: fc.integer({ min: 1, max: 100_000 }),
      temperature: fc.double({ min: 0, max: 2, noNaN: true }),
      topP: fc.double({ min: 0, max: 1, noNaN: true }),
      stop: fc.array(fc.string({ minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 4 }),
      seed: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      presencePenalty: fc.double({ min: -2, max: 2, noNaN: true }),
      frequencyPenalty: fc.double({ min: -2, max: 2, noNaN: true }),
      responseFormat: fc.oneof(
        fc.constant({ type: 'text' as const }),
        fc.constant({ type: 'json_object' as const }),
        fc.record({ type: fc.constant('json_schema' as const), name: fc.constant('answer'), schema: objectSchema, description: text, strict: fc.boolean() }, { requiredKeys: ['type', 'name', 'schema'] }),
      ),
      reasoningEffort: fc.constantFrom('none', 'minimal', 'low', 'medium', 'high'),
    },
    { requiredKeys: ['ops', 'tools', 'withTools'] },
  )
  .map(({ ops, tools, withTools, toolChoice, parallelToolCalls, ...rest }) => {
    const req: UpstreamRequest = { provider: 'google', model: 'gemini-2.5-flash', messages: conversation(ops), ...rest };
    if (withTools) {
      req.tools = tools.map((t) => ({ type: 'function', ...t }) as Tool);
      if (toolChoice !== undefined) req.toolChoice = toolChoice === 'named' ? { type: 'function', name: tools[0]!.name } : toolChoice;
      if (parallelToolCalls !== undefined) req.parallelToolCalls = parallelToolCalls;
    }
    return req;
  })
  // Valid as every surface validates it.
  .filter((req) => chatRequestSchema.safeParse(req).success);

type Atom = { role: 'user' | 'model'; [key: string]: unknown };

/** What the request says, in order, as independent of either wire as can be. */
function requestAtoms(req: UpstreamRequest): Atom[] {
  const atoms: Atom[] = [];
  for (const m of req.messages) {
    if (m.role === 'user') {
      if (typeof m.content === 'string') atoms.push({ role: 'user', text: m.content });
      else for (const p of m.content) atoms.push(p.type === 'text' ? { role: 'user', text: p.text } : { role: 'user', image: p.url });
    } else if (m.role === 'assistant') {
      if (m.content !== '' || !m.toolCalls) atoms.push({ role: 'model', text: m.content });
      for (const c of m.toolCalls ?? []) atoms.push({ role: 'model', call: c.name, args: c.arguments === '' ? {} : JSON.parse(c.arguments), id: c.id.startsWith('gcall_') ? undefined : c.id });
    } else if (m.role === 'tool') {
      const call = req.messages.flatMap((x) => (x.role === 'assistant' ? (x.toolCalls ?? []) : [])).find((c) => c.id === m.toolCallId)!;
      let value: unknown = m.content;
      try {
        value = JSON.parse(m.content as string);
      } catch {
        // text
      }
      const response = value !== null && typeof value === 'object' && !Array.isArray(value) ? value : { output: value };
      atoms.push({ role: 'user', response: call.name, value: response, id: m.toolCallId.startsWith('gcall_') ? undefined : m.toolCallId });
    }
  }
  return atoms;
}

/** The Gemini body read back. */
function bodyAtoms(body: GeminiGenerateContentRequestBody): Atom[] {
  const atoms: Atom[] = [];
  for (const c of body.contents) {
    for (const p of c.parts) {
      if ('text' in p) atoms.push({ role: c.role, text: p.text });
      else if ('inlineData' in p) atoms.push({ role: c.role, image: `data:${p.inlineData.mimeType};base64,${p.inlineData.data}` });
      else if ('fileData' in p) atoms.push({ role: c.role, image: p.fileData.fileUri });
      else if ('functionCall' in p) atoms.push({ role: c.role, call: p.functionCall.name, args: p.functionCall.args, id: p.functionCall.id });
      else atoms.push({ role: c.role, response: p.functionResponse.name, value: p.functionResponse.response, id: p.functionResponse.id });
    }
  }
  return atoms;
}

describe('Gemini conversion: random requests (issue 20)', () => {
  it('issue 20: random valid requests convert to Gemini without loss', () => {
    fc.assert(
      fc.property(validRequest, (req) => {
        const body = convertToGeminiRequest(req);
        expect(bodyAtoms(body)).toEqual(requestAtoms(req));
        // Turns alternate; instructions are the systemInstruction, in order.
        for (let i = 1; i < body.contents.length; i += 1) expect(body.contents[i]!.role).not.toBe(body.contents[i - 1]!.role);
        const instructions = req.messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => ({ text: m.content as string }));
        expect(body.systemInstruction?.parts ?? []).toEqual(instructions);
        expect(body.tools?.[0]?.functionDeclarations ?? []).toEqual(
          (req.tools ?? []).map((t) => ({ name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), ...(t.parameters ? { parametersJsonSchema: t.parameters } : {}) })),
        );
        const strict = req.tools?.some((t) => t.strict) ?? false;
        const choice = req.toolChoice;
        const mode = choice === undefined ? (strict ? 'VALIDATED' : undefined) : typeof choice === 'object' ? 'ANY' : { auto: strict ? 'VALIDATED' : 'AUTO', none: 'NONE', required: 'ANY' }[choice];
        expect(body.toolConfig?.functionCallingConfig.mode).toBe(mode);
        if (typeof choice === 'object') expect(body.toolConfig?.functionCallingConfig.allowedFunctionNames).toEqual([choice.name]);
        const g = body.generationConfig ?? {};
        expect([g.maxOutputTokens, g.temperature, g.topP, g.stopSequences, g.seed, g.presencePenalty, g.frequencyPenalty]).toEqual([
          req.maxTokens, req.temperature, req.topP, req.stop, req.seed, req.presencePenalty, req.frequencyPenalty,
        ]);
        const format = req.responseFormat;
        expect(g.responseMimeType).toBe(format && format.type !== 'text' ? 'application/json' : undefined);
        if (format?.type === 'json_schema') expect(g.responseJsonSchema).toEqual(format.description !== undefined ? { ...format.schema, description: format.description } : format.schema);
        if (req.reasoningEffort !== undefined) expect(g.thinkingConfig?.thinkingBudget).toBe(GEMINI_THINKING_BUDGETS[req.reasoningEffort]);
        expect(g.thinkingConfig?.includeThoughts).toBe(req.reasoningEffort === undefined || req.reasoningEffort === 'none' ? undefined : true);
      }),
      { numRuns: 300 },
    );
  });

  const UNSUPPORTED_KEYWORDS = ['pattern', 'minLength', 'maxLength', 'const', 'not', 'allOf', 'uniqueItems', 'multipleOf', 'exclusiveMinimum', 'patternProperties', 'if', 'nullable'];
  type Defect = (req: UpstreamRequest) => string;
  const defects: fc.Arbitrary<Defect> = fc.oneof(
    fc.constant<Defect>((req) => {
      req.tools ??= [{ type: 'function', name: 'get_time' }];
      req.parallelToolCalls = false;
      return 'parallelToolCalls';
    }),
    fc.constantFrom('data:image/gif;base64,R0lG', 'https://example.com/picture', 'https://example.com/anim.gif', 'https://example.com/doc.pdf').map<Defect>((url) => (req) => {
      req.messages.push({ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', url }] });
      return `messages[${req.messages.length - 1}].content[1].url`;
    }),
    fc.constantFrom('{"a":', '[1]', '"text"', 'null', '42').map<Defect>((bad) => (req) => {
      req.messages.push({ role: 'assistant', content: '', toolCalls: [{ id: 'bad_1', name: 'get_time', arguments: bad }] });
      return `messages[${req.messages.length - 1}].toolCalls[0].arguments`;
    }),
    fc.tuple(fc.constantFrom(...UNSUPPORTED_KEYWORDS), fc.boolean()).map<Defect>(([keyword, inTools]) => (req) => {
      const schema = { type: 'object', properties: { x: { type: 'string', [keyword]: keyword === 'not' ? {} : 1 } } };
      if (inTools) {
        req.tools = [...(req.tools ?? []).filter((t) => t.name !== 'deep'), { type: 'function', name: 'deep', parameters: schema }];
        return `tools[${req.tools.length - 1}].parameters.properties.x.${keyword}`;
      }
      req.responseFormat = { type: 'json_schema', name: 'x', schema };
      return `responseFormat.schema.properties.x.${keyword}`;
    }),
    fc.oneof(fc.integer({ min: 2 ** 31, max: 2 ** 53 - 1 }), fc.integer({ min: -(2 ** 53) + 1, max: -(2 ** 31) - 1 })).map<Defect>((seed) => (req) => {
      req.seed = seed;
      return 'seed';
    }),
  );

  it('issue 20: random requests with one thing Gemini cannot take get a 400 naming it', () => {
    fc.assert(
      fc.property(validRequest, defects, (req, defect) => {
        // Without a defect elsewhere: drop what a defect could collide with.
        delete req.parallelToolCalls;
        const param = defect(req);
        let error: unknown;
        try {
          convertToGeminiRequest(req);
        } catch (e) {
          error = e;
        }
        expect(ProviderError.isInstance(error)).toBe(true);
        expect(error).toMatchObject({ kind: 'bad_request', status: 400, param });
      }),
      { numRuns: 300 },
    );
  });
});
