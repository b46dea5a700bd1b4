import { z } from 'zod';
import type { ChatMessageInput, ChatRequestInput, FinishReason, GatewayErrorCode, TokenUsage, ToolCall } from '../../../shared';

/**
 * OpenAI's Chat Completions wire as the /v1 endpoint speaks it: the request we accept and the
 * shapes we answer with. Every field is carried or refused with a 400 naming it (issue 20):
 * fields OpenAI defines that Keyrack does not implement (`logprobs`, `audio`, ...) and fields
 * OpenAI does not define at all are refused, as OpenAI itself refuses unknown arguments. A
 * field set to null, or to the value that asks for nothing (`logprobs: false`, `n: 1`), is
 * taken as absent: it changes nothing, so nothing is dropped.
 */

const nullish = <T extends z.ZodType>(schema: T) => schema.nullish();

const wireTextPartSchema = z.strictObject({ type: z.literal('text'), text: z.string() });
const wireImagePartSchema = z.strictObject({
  type: z.literal('image_url'),
  image_url: z.strictObject({ url: z.string(), detail: nullish(z.enum(['auto', 'low', 'high'])) }),
});
const PART_TYPES = 'Keyrack takes text and image_url content parts (input_audio and file are not supported)';
const wireUserPartSchema = z.discriminatedUnion('type', [wireTextPartSchema, wireImagePartSchema], { error: PART_TYPES });
const wireTextPartsSchema = z.array(z.discriminatedUnion('type', [wireTextPartSchema], { error: 'only text parts are allowed here' }));

/** Fields of a message OpenAI defines that Keyrack does not carry: present and not null is a 400 naming them. */
const notCarried = (what: string) => z.null({ error: `Keyrack does not support ${what}` }).optional();

const wireToolCallSchema = z.strictObject({
  id: z.string(),
  type: z.literal('function', { error: 'tool calls are of type function' }),
  function: z.strictObject({ name: z.string(), arguments: z.string() }),
});

const wireMessageSchema = z.discriminatedUnion(
  'role',
  [
    z.strictObject({ role: z.literal('system'), content: z.union([z.string(), wireTextPartsSchema]), name: notCarried('name on messages') }),
    z.strictObject({ role: z.literal('developer'), content: z.union([z.string(), wireTextPartsSchema]), name: notCarried('name on messages') }),
    z.strictObject({ role: z.literal('user'), content: z.union([z.string(), z.array(wireUserPartSchema)]), name: notCarried('name on messages') }),
    z.strictObject({
      role: z.literal('assistant'),
      content: nullish(z.union([z.string(), wireTextPartsSchema])),
      tool_calls: nullish(z.array(wireToolCallSchema)),
      refusal: notCarried('refusal in a request'),
      name: notCarried('name on messages'),
      audio: notCarried('audio'),
      function_call: notCarried('function_call (legacy functions; use tool_calls)'),
    }),
    z.strictObject({ role: z.literal('tool'), tool_call_id: z.string(), content: z.union([z.string(), wireTextPartsSchema]) }),
  ],
  { error: 'role is system, developer, user, assistant or tool (the legacy function role is not supported)' },
);

const wireToolSchema = z.strictObject({
  type: z.literal('function', { error: 'tools are of type function (custom tools are not supported)' }),
  function: z.strictObject({
    name: z.string(),
    description: nullish(z.string()),
    parameters: nullish(z.record(z.string(), z.unknown())),
    strict: nullish(z.boolean()),
  }),
});

const wireToolChoiceSchema = z.union(
  [z.enum(['auto', 'none', 'required']), z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: z.string() }) })],
  { error: "tool_choice is 'auto', 'none', 'required' or { type: 'function', function: { name } } (allowed_tools and custom are not supported)" },
);

const wireResponseFormatSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('text') }),
    z.strictObject({ type: z.literal('json_object') }),
    z.strictObject({
      type: z.literal('json_schema'),
      json_schema: z.strictObject({
        name: z.string(),
        description: nullish(z.string()),
        schema: nullish(z.record(z.string(), z.unknown())),
        strict: nullish(z.boolean()),
      }),
    }),
  ],
  { error: 'response_format type is text, json_object or json_schema' },
);

/** The request fields Keyrack implements. Ranges and cross-field rules are shared/chat.ts's (checked after conversion). */
export const openaiChatRequestSchema = z.object({
  model: z.string().min(1),
  messages: z.array(wireMessageSchema).min(1),
  stream: nullish(z.boolean()),
  stream_options: nullish(z.strictObject({ include_usage: nullish(z.boolean()), include_obfuscation: notCarried('stream_options.include_obfuscation') })),
  max_tokens: nullish(z.number().int().positive()),
  max_completion_tokens: nullish(z.number().int().positive()),
  temperature: nullish(z.number()),
  top_p: nullish(z.number()),
  n: nullish(z.literal(1, { error: 'Keyrack answers with one choice: n must be 1' })),
  stop: nullish(z.union([z.string(), z.array(z.string())])),
  seed: nullish(z.number().int()),
  presence_penalty: nullish(z.number()),
  frequency_penalty: nullish(z.number()),
  tools: nullish(z.array(wireToolSchema)),
  tool_choice: nullish(wireToolChoiceSchema),
  parallel_tool_calls: nullish(z.boolean()),
  response_format: nullish(wireResponseFormatSchema),
  reasoning_effort: nullish(z.string()),
  /**
   * End-user ids for the provider's abuse monitoring. Accepted and not forwarded: Keyrack's
   * user is the token's subject, and passing a caller's own id on under a shared key would tell
   * the provider about users it has no business knowing.
   */
  user: nullish(z.string().max(512)),
  safety_identifier: nullish(z.string().max(512)),
});
export type OpenAIChatRequest = z.infer<typeof openaiChatRequestSchema>;

const IMPLEMENTED = new Set(Object.keys(openaiChatRequestSchema.shape));

/**
 * Fields OpenAI defines that Keyrack does not implement, each with the values that ask for
 * nothing (taken as absent). Anything else in the body is unknown to OpenAI too.
 */
const NOT_IMPLEMENTED: ReadonlyMap<string, (value: unknown) => boolean> = new Map([
  ['logprobs', (v) => v === false],
  ['top_logprobs', (v) => v === 0],
  ['logit_bias', (v) => isEmptyObject(v)],
  ['modalities', (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text'],
  ['audio', () => false],
  ['prediction', () => false],
  ['service_tier', (v) => v === 'auto'],
  ['store', (v) => v === false],
  ['metadata', (v) => isEmptyObject(v)],
  ['web_search_options', () => false],
  ['functions', () => false],
  ['function_call', () => false],
  ['verbosity', () => false],
  ['prompt_cache_key', () => false],
  ['prompt_cache_retention', () => false],
]);

function isEmptyObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 0;
}

export interface WireRefusal {
  /** The wire field, as OpenAI's `param` names it: `top_p`, `messages[2].tool_call_id`. */
  param: string;
  message: string;
}

/**
 * The top-level fields outside what Keyrack implements: the first one that asks for something
 * is refused. A loop over the body's keys rather than a strict schema with every field OpenAI
 * has (each one a schema run on every request, mostly on undefined).
 */
export function refusedTopLevelField(body: Record<string, unknown>): WireRefusal | null {
  for (const key in body) {
    if (IMPLEMENTED.has(key)) continue;
    const value = body[key];
    if (value === null || value === undefined) continue;
    const neutral = NOT_IMPLEMENTED.get(key);
    if (neutral === undefined) return { param: key, message: `${key}: unknown parameter` };
    if (!neutral(value)) return { param: key, message: `${key}: Keyrack does not support this parameter` };
  }
  return null;
}

/** Reads a /v1 body: the wire shape, then the shared request model's rules, both with the wire's field names. */
export function readOpenAIChatRequest(raw: unknown): { ok: true; wire: OpenAIChatRequest; chat: ChatRequestInput } | { ok: false; refusal: WireRefusal } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, refusal: { param: 'body', message: 'body: a JSON object is expected' } };
  const plain = plainChatRequest(raw as Record<string, unknown>);
  if (plain) return { ok: true, wire: raw as OpenAIChatRequest, chat: plain };
  const refused = refusedTopLevelField(raw as Record<string, unknown>);
  if (refused) return { ok: false, refusal: refused };
  const parsed = openaiChatRequestSchema.safeParse(raw);
  if (!parsed.success) return { ok: false, refusal: refusalOf(parsed.error.issues[0], (path) => path) };
  return { ok: true, wire: parsed.data, chat: toChatRequest(parsed.data) };
}

const PLAIN_ROLES = new Set(['system', 'developer', 'user', 'assistant']);
const isOptionalNumber = (v: unknown) => v === undefined || v === null || typeof v === 'number';

/**
 * The request nearly every chat is, `{ model, messages: [{ role, content: "text" }], stream?,
 * stream_options?, max_tokens?, temperature?, top_p? }`, read with typeof checks alone: the wire
 * schema's unions and strict objects cost ~7 us a request, about 5% of a /v1 call (issue #8's
 * benchmarks). Undefined for anything else, which the schema reads; the shared rules check both.
 */
function plainChatRequest(body: Record<string, unknown>): ChatRequestInput | undefined {
  let keys = 0;
  for (const key in body) {
    keys += 1;
    if (!PLAIN_KEYS.has(key)) return undefined;
  }
  if (keys < 2 || typeof body.model !== 'string' || body.model === '') return undefined;
  const { messages } = body;
  if (!Array.isArray(messages) || messages.length === 0) return undefined;
  for (const m of messages) {
    if (typeof m !== 'object' || m === null || typeof m.content !== 'string' || !PLAIN_ROLES.has(m.role)) return undefined;
    let fields = 0;
    for (const _ in m) fields += 1;
    if (fields !== 2) return undefined;
  }
  const { stream, stream_options: options, max_tokens, max_completion_tokens, temperature, top_p } = body;
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') return undefined;
  if (options !== undefined && options !== null) {
    if (typeof options !== 'object' || Array.isArray(options)) return undefined;
    for (const key in options) if (key !== 'include_usage') return undefined;
    const include = (options as { include_usage?: unknown }).include_usage;
    if (include !== undefined && include !== null && typeof include !== 'boolean') return undefined;
  }
  if (!isOptionalNumber(max_tokens) || !isOptionalNumber(max_completion_tokens) || !isOptionalNumber(temperature) || !isOptionalNumber(top_p)) return undefined;
  // Both caps given: the schema checks the one the shared rules do not see.
  if (absent(max_tokens) && absent(max_completion_tokens)) return undefined;
  const chat: ChatRequestInput = { model: body.model, messages: messages as ChatMessageInput[] };
  const maxTokens = (max_completion_tokens ?? max_tokens) as number | null | undefined;
  if (absent(maxTokens)) chat.maxTokens = maxTokens;
  if (absent(temperature)) chat.temperature = temperature as number;
  if (absent(top_p)) chat.topP = top_p as number;
  return chat;
}
const PLAIN_KEYS = new Set(['model', 'messages', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p']);

/** A zod issue as a refusal naming the field; `rename` turns its path into the wire's. */
export function refusalOf(issue: z.core.$ZodIssue | undefined, rename: (path: PropertyKey[]) => PropertyKey[]): WireRefusal {
  if (!issue) return { param: 'body', message: 'invalid request' };
  let path = rename(issue.path);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    path = [...path, issue.keys[0] ?? ''];
    message = 'unknown parameter';
  } else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    // A union's own message is vague; the branch nearest to matching names the field.
    const deepest = issue.errors.flat().sort((a, b) => b.path.length - a.path.length)[0];
    if (deepest && deepest.path.length > 0) return refusalOf({ ...deepest, path: [...issue.path, ...deepest.path] } as z.core.$ZodIssue, rename);
  }
  const param = formatPath(path) || 'body';
  return { param, message: `${param}: ${message}` };
}

/** `['messages', 2, 'content']` as `messages[2].content`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) out += typeof segment === 'number' ? `[${segment}]` : out === '' ? String(segment) : `.${String(segment)}`;
  return out;
}

const absent = <T>(value: T | null | undefined): value is T => value !== null && value !== undefined;

export function toChatRequest(body: OpenAIChatRequest): ChatRequestInput {
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  const chat: ChatRequestInput = { model: body.model, messages: body.messages.map(toChatMessage) };
  if (absent(maxTokens)) chat.maxTokens = maxTokens;
  if (absent(body.temperature)) chat.temperature = body.temperature;
  if (absent(body.top_p)) chat.topP = body.top_p;
  if (absent(body.stop)) chat.stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
  if (absent(body.seed)) chat.seed = body.seed;
  if (absent(body.presence_penalty)) chat.presencePenalty = body.presence_penalty;
  if (absent(body.frequency_penalty)) chat.frequencyPenalty = body.frequency_penalty;
  if (absent(body.tools)) {
    chat.tools = body.tools.map(({ function: f }) => ({
      type: 'function' as const,
      name: f.name,
      ...(absent(f.description) ? { description: f.description } : {}),
      ...(absent(f.parameters) ? { parameters: f.parameters } : {}),
      ...(absent(f.strict) ? { strict: f.strict } : {}),
    }));
  }
  if (absent(body.tool_choice)) chat.toolChoice = typeof body.tool_choice === 'string' ? body.tool_choice : { type: 'function', name: body.tool_choice.function.name };
  if (absent(body.parallel_tool_calls)) chat.parallelToolCalls = body.parallel_tool_calls;
  if (absent(body.response_format)) {
    const format = body.response_format;
    if (format.type !== 'json_schema') chat.responseFormat = { type: format.type };
    else {
      const s = format.json_schema;
      chat.responseFormat = {
        type: 'json_schema',
        name: s.name,
        // Missing, the shared rules refuse it (response_format.json_schema.schema): a schema-less json_schema is json_object.
        schema: (s.schema ?? undefined) as Record<string, unknown>,
        ...(absent(s.description) ? { description: s.description } : {}),
        ...(absent(s.strict) ? { strict: s.strict } : {}),
      };
    }
  }
  if (absent(body.reasoning_effort)) chat.reasoningEffort = body.reasoning_effort as ChatRequestInput['reasoningEffort'];
  return chat;
}

function toChatMessage(m: OpenAIChatRequest['messages'][number]): ChatMessageInput {
  switch (m.role) {
    case 'system':
    case 'developer':
      return { role: m.role, content: m.content };
    case 'user':
      return {
        role: 'user',
        content:
          typeof m.content === 'string'
            ? m.content
            : m.content.map((p) =>
                p.type === 'text' ? p : { type: 'image' as const, url: p.image_url.url, ...(absent(p.image_url.detail) ? { detail: p.image_url.detail } : {}) },
              ),
      };
    case 'assistant': {
      const content = typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join('');
      const calls = m.tool_calls?.length ? m.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })) : undefined;
      return { role: 'assistant', content, ...(calls ? { toolCalls: calls } : {}) };
    }
    case 'tool':
      return { role: 'tool', toolCallId: m.tool_call_id, content: m.content };
  }
}

/** Wire names of the shared model's fields, for refusals of the shared rules and of the adapters and catalog (`field X`). */
const WIRE_FIELD: Record<string, string> = {
  topP: 'top_p',
  presencePenalty: 'presence_penalty',
  frequencyPenalty: 'frequency_penalty',
  toolChoice: 'tool_choice',
  parallelToolCalls: 'parallel_tool_calls',
  responseFormat: 'response_format',
  reasoningEffort: 'reasoning_effort',
};

/**
 * A path of the shared request model as the /v1 body names it: `topP` is `top_p`,
 * `messages.2.toolCallId` is `messages[2].tool_call_id`, `tools.0.name` is
 * `tools[0].function.name`, `maxTokens` is whichever of max_tokens / max_completion_tokens was sent.
 */
export function wirePath(path: readonly PropertyKey[], body: Pick<OpenAIChatRequest, 'max_completion_tokens' | 'stop'>): PropertyKey[] {
  const [head, ...rest] = path;
  switch (head) {
    case 'maxTokens':
      return [absent(body.max_completion_tokens) ? 'max_completion_tokens' : 'max_tokens', ...rest];
    case 'stop':
      return typeof body.stop === 'string' ? ['stop'] : path.slice();
    case 'tools':
      return rest.length >= 2 ? ['tools', rest[0]!, 'function', ...rest.slice(1)] : path.slice();
    case 'toolChoice':
      return rest[0] === 'name' ? ['tool_choice', 'function', 'name'] : ['tool_choice', ...rest];
    case 'responseFormat':
      return rest.length > 0 && rest[0] !== 'type' ? ['response_format', 'json_schema', ...rest] : ['response_format', ...rest];
    case 'messages': {
      const [index, field, ...more] = rest;
      if (field === 'toolCallId') return ['messages', index!, 'tool_call_id'];
      if (field === 'toolCalls') {
        const [call, callField] = more;
        if (callField === 'name' || callField === 'arguments') return ['messages', index!, 'tool_calls', call!, 'function', callField];
        return ['messages', index!, 'tool_calls', ...more];
      }
      // An image part's `url` is `image_url.url` on the wire.
      if (field === 'content' && more[1] === 'url') return ['messages', index!, 'content', more[0]!, 'image_url', 'url'];
      return path.slice();
    }
    default:
      return typeof head === 'string' && WIRE_FIELD[head] ? [WIRE_FIELD[head]!, ...rest] : path.slice();
  }
}

/** `messages[2].toolCallId` (a field named in a refusal's text) as its wire name. */
export function wireField(field: string, body: Pick<OpenAIChatRequest, 'max_completion_tokens' | 'stop'>): string {
  const path: PropertyKey[] = [];
  for (const match of field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) path.push(match[2] !== undefined ? Number(match[2]) : match[1]!);
  return formatPath(wirePath(path, body));
}

export type OpenAIFinishReason = 'stop' | 'length' | 'content_filter' | 'tool_calls';

export function openaiFinishReason(reason: FinishReason): OpenAIFinishReason {
  return reason === 'length' || reason === 'content_filter' || reason === 'tool_calls' ? reason : 'stop';
}

export function openaiUsage(usage: TokenUsage) {
  return {
    prompt_tokens: usage.inputTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.inputTokens + usage.outputTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedInputTokens },
    completion_tokens_details: { reasoning_tokens: usage.reasoningTokens },
  };
}

/** A whole answer's tool calls as OpenAI's `message.tool_calls`. */
export function openaiToolCalls(calls: readonly ToolCall[]) {
  return calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } }));
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function openaiError(message: string, type: string, code: string | null = null, param: string | null = null): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

/** HTTP status and OpenAI error type for each gateway code. */
export const OPENAI_ERROR_OF: Record<GatewayErrorCode, { status: number; type: string }> = {
  rate_limited: { status: 429, type: 'rate_limit_error' },
  quota_exhausted: { status: 429, type: 'insufficient_quota' },
  no_keys: { status: 503, type: 'server_error' },
  bad_request: { status: 400, type: 'invalid_request_error' },
  upstream_error: { status: 502, type: 'server_error' },
  stream_interrupted: { status: 502, type: 'server_error' },
  prompt_too_long: { status: 400, type: 'invalid_request_error' },
  budget_exceeded: { status: 429, type: 'insufficient_quota' },
  shutting_down: { status: 503, type: 'server_error' },
  not_found: { status: 404, type: 'invalid_request_error' },
  internal: { status: 500, type: 'server_error' },
  store_unavailable: { status: 503, type: 'server_error' },
};
