/** What a parsed chat request tells the mock, whichever wire format it came in. */
export interface MockChatInput {
  model: string;
  stream: boolean;
  /** OpenAI `stream_options.include_usage`. */
  includeUsage: boolean;
  maxTokens: number | undefined;
  lastUserText: string;
  /** Characters of all prompt text (system included), for a stable prompt token count. */
  promptChars: number;
  /** The functions the request offers (each wire's parseChat fills these from its own shapes). */
  tools?: readonly MockTool[];
  /** Absent = the wire's default (`auto` when tools are offered). */
  toolChoice?: MockToolChoice;
  /** false: at most one call per answer (OpenAI parallel_tool_calls, Anthropic disable_parallel_tool_use). */
  parallelToolCalls?: boolean;
  /** The conversation ends with a tool result: the mock answers it in text, whatever toolChoice says. */
  lastIsToolResult?: boolean;
  /** Structured output asked for: the answer text is JSON (valid against the schema when one is given). */
  responseFormat?: { type: 'json_object' } | { type: 'json_schema'; schema: Record<string, unknown> };
  /** Images in the conversation: the answer says how many it saw. */
  imageCount?: number;
  /** Thinking asked for (reasoning): the plan carries a short thought. */
  thinking?: boolean;
  /** Asked through OpenAI's Responses API: the request's fields its answer echoes (issue 21). */
  responses?: MockResponsesEcho;
}

/** What a Responses API answer repeats of its request (`instructions`, `tools`, `store`, ...), as OpenAI's response object does. */
export type MockResponsesEcho = Record<string, unknown>;

export interface MockTool {
  name: string;
  /** JSON schema of the arguments. */
  parameters?: Record<string, unknown>;
}
export type MockToolChoice = 'auto' | 'none' | 'required' | { name: string };

/** A call the mock's model makes: `arguments` is JSON text valid against the tool's schema. */
export interface MockToolCall {
  /** Unique per answer: `call_mock<serial>_<i>`; a wire may shape it its own way (Anthropic's `toolu_`). */
  id: string;
  name: string;
  arguments: string;
}

/** The answer to one request, decided before the first byte is written. */
export interface MockAnswerPlan {
  /** Unique per request: `chatcmpl-…`, `msg_…` and Gemini's responseId derive from it. */
  serial: number;
  model: string;
  stream: boolean;
  includeUsage: boolean;
  /** The streamed pieces; a piece is one word (with its leading space) and counts as one token. */
  chunks: string[];
  text: string;
  promptTokens: number;
  completionTokens: number;
  /** Cut short by the request's output cap (finish reason length / max_tokens / MAX_TOKENS). */
  truncated: boolean;
  /**
   * The calls this answer makes, after its text (finish reason tool_calls / tool_use): empty for a
   * plain answer. An answer with calls has no text, as models usually answer.
   */
  toolCalls: MockToolCall[];
  /** The thought a thinking model shows before its answer, or null. */
  reasoning: string | null;
  /** Seconds since the epoch, from the mock's clock. */
  created: number;
  /** See MockChatInput.responses. */
  responses?: MockResponsesEcho;
}

const FILLER = 'and here is more text from the mock provider so that every stream has a few deltas to carry'.split(' ');
const ECHOED_WORDS = 12;

/**
 * Deterministic answer words: "Mock answer to: <first words of the last user message>" then
 * filler, cycled, up to `chunkCount` words (default: the echo plus four filler words).
 */
export function answerWords(lastUserText: string, chunkCount: number | undefined): string[] {
  const echoed = lastUserText.split(/\s+/).filter(Boolean).slice(0, ECHOED_WORDS);
  const base = ['Mock', 'answer', 'to:', ...echoed];
  const count = Math.max(1, chunkCount ?? base.length + 4);
  const words = new Array<string>(count);
  for (let i = 0; i < count; i += 1) words[i] = i < base.length ? (base[i] as string) : (FILLER[(i - base.length) % FILLER.length] as string);
  return words;
}

export function planAnswer(input: MockChatInput, chunkCount: number | undefined, serial: number, nowMs: number): MockAnswerPlan {
  const toolCalls = decideToolCalls(input, serial);
  const words = toolCalls.length > 0 ? [] : answerWordsFor(input, chunkCount);
  const cap = input.maxTokens !== undefined && input.maxTokens > 0 ? input.maxTokens : Number.POSITIVE_INFINITY;
  const kept = words.length > cap ? words.slice(0, cap) : words;
  const chunks = input.responseFormat ? kept : kept.map((w, i) => (i === 0 ? w : ' ' + w));
  const callTokens = toolCalls.reduce((sum, call) => sum + Math.ceil((call.name.length + call.arguments.length) / 4), 0);
  const reasoning = input.thinking ? `Mock thinking about: ${input.lastUserText.split(/\s+/).filter(Boolean).slice(0, ECHOED_WORDS).join(' ')}` : null;
  return {
    serial,
    model: input.model,
    stream: input.stream,
    includeUsage: input.includeUsage,
    chunks,
    text: chunks.join(''),
    // Roughly four characters a token, as the providers' own rule of thumb says.
    promptTokens: Math.max(1, Math.ceil(input.promptChars / 4)),
    completionTokens: chunks.length + callTokens + (reasoning ? Math.ceil(reasoning.length / 4) : 0),
    truncated: kept.length < words.length,
    toolCalls,
    reasoning,
    created: Math.floor(nowMs / 1000),
    ...(input.responses ? { responses: input.responses } : {}),
  };
}

/** `mock-chunks-200` anywhere in a model name asks for 200 chunks. */
export function chunkCountFromModel(model: string): number | undefined {
  const match = /mock-chunks-(\d+)/.exec(model);
  return match ? Number(match[1]) : undefined;
}

/** Text of a message content that is either a string or a list of typed parts. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) {
    if (part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') {
      out += (out ? ' ' : '') + (part as { text: string }).text;
    }
  }
  return out;
}

/**
 * Which functions the mock's model calls, deterministically: none after a tool result or with
 * `none`; the named one for a named choice; the first tool for `required`; for `auto`, every tool
 * whose name the last user message mentions (one when parallel calls are off). Arguments are
 * built from each tool's JSON schema, so they validate against it.
 */
export function decideToolCalls(input: MockChatInput, serial: number): MockToolCall[] {
  const tools = input.tools ?? [];
  const choice = input.toolChoice ?? 'auto';
  if (tools.length === 0 || input.lastIsToolResult || choice === 'none') return [];
  let chosen: MockTool[];
  if (typeof choice === 'object') chosen = tools.filter((tool) => tool.name === choice.name).slice(0, 1);
  else if (choice === 'required') chosen = tools.slice(0, 1);
  else {
    const text = input.lastUserText.toLowerCase();
    chosen = tools.filter((tool) => text.includes(tool.name.toLowerCase()));
  }
  if (input.parallelToolCalls === false) chosen = chosen.slice(0, 1);
  return chosen.map((tool, i) => ({ id: `call_mock${serial}_${i}`, name: tool.name, arguments: JSON.stringify(mockValueFor(tool.parameters ?? { type: 'object', properties: {} })) }));
}

/** The answer's words: the usual echo, with the images it saw, or JSON pieces for structured output. */
function answerWordsFor(input: MockChatInput, chunkCount: number | undefined): string[] {
  if (input.responseFormat) {
    const value = input.responseFormat.type === 'json_schema' ? mockValueFor(input.responseFormat.schema) : { answer: `Mock answer to: ${input.lastUserText.slice(0, 80)}` };
    return jsonPieces(JSON.stringify(value));
  }
  const seen = input.imageCount ? `(saw ${input.imageCount} image${input.imageCount === 1 ? '' : 's'}) ` : '';
  const prefix = input.lastIsToolResult ? 'the tool result ' : '';
  return answerWords(prefix + seen + input.lastUserText, chunkCount);
}

/** JSON text in pieces of about 8 characters: streamed structured output arrives in fragments, as from a real model. */
function jsonPieces(json: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < json.length; i += 8) pieces.push(json.slice(i, i + 8));
  return pieces;
}

const MAX_SCHEMA_DEPTH = 8;

/**
 * A value valid against a JSON schema (the subset tools use: type, properties, required, items,
 * enum, const, anyOf/oneOf/allOf, minimum, minItems, default), the same every time.
 */
export function mockValueFor(schema: unknown, depth = 0): unknown {
  if (!schema || typeof schema !== 'object' || depth > MAX_SCHEMA_DEPTH) return null;
  const s = schema as Record<string, unknown>;
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  if ('default' in s) return s.default;
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = s[key];
    if (Array.isArray(options) && options.length > 0) return mockValueFor(options[0], depth + 1);
  }
  if (Array.isArray(s.allOf) && s.allOf.length > 0) {
    return Object.assign({}, ...s.allOf.map((part) => mockValueFor(part, depth + 1)).filter((v) => v && typeof v === 'object'));
  }
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') ?? 'null' : s.type ?? (s.properties ? 'object' : undefined);
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const properties = (s.properties ?? {}) as Record<string, unknown>;
      for (const [name, property] of Object.entries(properties)) out[name] = mockValueFor(property, depth + 1);
      return out;
    }
    case 'array': {
      const count = typeof s.minItems === 'number' && s.minItems > 0 ? s.minItems : 1;
      return Array.from({ length: count }, () => mockValueFor(s.items ?? {}, depth + 1));
    }
    case 'string':
      if (s.format === 'date-time') return '2026-01-01T00:00:00Z';
      if (s.format === 'date') return '2026-01-01';
      if (typeof s.minLength === 'number' && s.minLength > 4) return 'mock'.padEnd(s.minLength, 'k');
      return 'mock';
    case 'integer':
    case 'number':
      return typeof s.minimum === 'number' ? (type === 'integer' ? Math.ceil(s.minimum) : s.minimum) : typeof s.exclusiveMinimum === 'number' ? Math.floor(s.exclusiveMinimum) + 1 : 1;
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return null;
  }
}
