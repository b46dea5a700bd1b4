import { z } from 'zod';
import type { ChatMessage, TokenUsage } from '../../../shared';
import { refusalOf, type WireRefusal } from './openaiWire';

/**
 * OpenAI's Responses API create request (platform.openai.com/docs/api-reference/responses/create)
 * as /v1/responses takes it (issue 21). The body is passed through to the provider, so the
 * gateway checks the type of every top-level field and decides for each: forwarded as sent, or
 * refused with a 400 naming it. Inside input items, tools and formats the fields the gateway
 * reads (roles, texts, call ids, tool types) are checked; the rest of a known item is forwarded
 * as sent for the provider to judge (new SDK fields such as `phase` or `prompt_cache_breakpoint`
 * keep working). Refused, because they keep state at the provider under ONE key's account while
 * the next request may be served by another key of another account:
 * `store: true`, `previous_response_id`, `conversation`, `background: true`, `prompt` (a stored
 * template), `item_reference` items and `file_id` inputs. Refused because Keyrack cannot meter
 * them: hosted tools (web search, file search, code interpreter, MCP, ...: billed per call
 * outside token usage) and service tiers other than `auto`/`default` (priced apart from the
 * catalog). Unknown top-level fields are refused, as /v1/chat/completions does.
 */

const nullish = <T extends z.ZodType>(schema: T) => schema.nullish();

/** Why a field that keeps state at the provider is refused. */
const STATEFUL = 'keeps state at the provider under one key\u2019s account, and Keyrack may serve the next request with another key; send the whole conversation in `input` instead';

const refused = (why: string) => z.null({ error: why }).optional();

const textPartSchema = z.looseObject({ type: z.literal('input_text'), text: z.string() });
const imagePartSchema = z.looseObject({
  type: z.literal('input_image'),
  image_url: z.string({ error: 'input_image needs image_url (a URL or a data URL)' }),
  detail: nullish(z.enum(['auto', 'low', 'high', 'original'])),
  file_id: refused(`file_id refers to a file uploaded to one provider account: ${STATEFUL}`),
});
const filePartSchema = z.looseObject({
  type: z.literal('input_file'),
  file_data: nullish(z.string()),
  file_url: nullish(z.string()),
  filename: nullish(z.string()),
  file_id: refused(`file_id refers to a file uploaded to one provider account: ${STATEFUL}`),
});
const outputTextPartSchema = z.looseObject({ type: z.literal('output_text'), text: z.string() });
const refusalPartSchema = z.looseObject({ type: z.literal('refusal'), refusal: z.string() });
const contentPartSchema = z.discriminatedUnion('type', [textPartSchema, imagePartSchema, filePartSchema, outputTextPartSchema, refusalPartSchema], {
  error: 'content parts are input_text, input_image, input_file, output_text or refusal',
});

const messageItemSchema = z.looseObject({
  type: z.literal('message'),
  role: z.enum(['user', 'assistant', 'system', 'developer'], { error: 'role is user, assistant, system or developer' }),
  content: z.union([z.string(), z.array(contentPartSchema)]),
});
const functionCallItemSchema = z.looseObject({ type: z.literal('function_call'), call_id: z.string().min(1), name: z.string().min(1), arguments: z.string() });
const functionOutputItemSchema = z.looseObject({
  type: z.literal('function_call_output'),
  call_id: z.string().min(1),
  output: z.union([z.string(), z.array(contentPartSchema)]),
});
const customCallItemSchema = z.looseObject({ type: z.literal('custom_tool_call'), call_id: z.string().min(1), name: z.string().min(1), input: z.string() });
const customOutputItemSchema = z.looseObject({ type: z.literal('custom_tool_call_output'), call_id: z.string().min(1), output: z.union([z.string(), z.array(contentPartSchema)]) });
/** A reasoning item sent back: stateless only with its `encrypted_content` (the provider's to check). */
const reasoningItemSchema = z.looseObject({
  type: z.literal('reasoning'),
  summary: z.array(z.looseObject({ type: z.string(), text: z.string() })),
  encrypted_content: nullish(z.string()),
});

const ITEM_TYPES = 'input items are messages, function_call, function_call_output, custom_tool_call, custom_tool_call_output or reasoning';
/**
 * An item, by its `type`; a message may leave it out (OpenAI's EasyInputMessage), and is read as
 * `type: 'message'` here (the body is forwarded as sent).
 */
const inputItemSchema = z.preprocess(
  (item) => (typeof item === 'object' && item !== null && !Array.isArray(item) && (item as { type?: unknown }).type === undefined ? { ...item, type: 'message' } : item),
  z.discriminatedUnion(
    'type',
    [
      messageItemSchema,
      functionCallItemSchema,
      functionOutputItemSchema,
      customCallItemSchema,
      customOutputItemSchema,
      reasoningItemSchema,
      z.looseObject({ type: z.literal('item_reference'), id: z.never({ error: `item_reference ${STATEFUL}` }) }),
    ],
    { error: ITEM_TYPES },
  ),
);

const functionToolSchema = z.looseObject({
  type: z.literal('function'),
  name: z.string().min(1),
  description: nullish(z.string()),
  parameters: nullish(z.record(z.string(), z.unknown())),
  strict: nullish(z.boolean()),
});
const customToolSchema = z.looseObject({ type: z.literal('custom'), name: z.string().min(1), description: nullish(z.string()) });
const HOSTED_TOOLS = 'Keyrack carries function and custom tools (run by the client); hosted tools (web_search, file_search, code_interpreter, mcp, image_generation, computer use, ...) are billed by the provider outside token usage, so the gateway cannot meter them';
const toolSchema = z.discriminatedUnion('type', [functionToolSchema, customToolSchema], { error: HOSTED_TOOLS });

const namedToolSchema = z.discriminatedUnion('type', [z.strictObject({ type: z.literal('function'), name: z.string() }), z.strictObject({ type: z.literal('custom'), name: z.string() })], { error: HOSTED_TOOLS });
const toolChoiceSchema = z.union(
  [
    z.enum(['auto', 'none', 'required']),
    namedToolSchema,
    z.strictObject({ type: z.literal('allowed_tools'), mode: z.enum(['auto', 'required']), tools: z.array(namedToolSchema) }),
  ],
  { error: `tool_choice is 'auto', 'none', 'required', { type: 'function' | 'custom', name } or allowed_tools of those (${HOSTED_TOOLS})` },
);

const formatSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('text') }),
    z.strictObject({ type: z.literal('json_object') }),
    z.strictObject({
      type: z.literal('json_schema'),
      name: z.string().min(1),
      schema: z.record(z.string(), z.unknown()),
      description: nullish(z.string()),
      strict: nullish(z.boolean()),
    }),
  ],
  { error: 'text.format type is text, json_object or json_schema' },
);

const INCLUDABLE = [
  'file_search_call.results',
  'web_search_call.results',
  'web_search_call.action.sources',
  'message.input_image.image_url',
  'computer_call_output.output.image_url',
  'code_interpreter_call.outputs',
  'reasoning.encrypted_content',
  'message.output_text.logprobs',
] as const;

/** Every field Keyrack takes, forwarded as sent unless said otherwise. */
export const responsesRequestSchema = z.object({
  /** Replaced by the catalog's upstream id; the answer names the model as it was asked for. */
  model: z.string().min(1),
  input: z.union([z.string(), z.array(inputItemSchema).min(1)]),
  instructions: nullish(z.string()),
  max_output_tokens: nullish(z.number().int().positive()),
  temperature: nullish(z.number().min(0).max(2)),
  top_p: nullish(z.number().min(0).max(1)),
  top_logprobs: nullish(z.number().int().min(0).max(20)),
  tools: nullish(z.array(toolSchema)),
  tool_choice: nullish(toolChoiceSchema),
  parallel_tool_calls: nullish(z.boolean()),
  max_tool_calls: nullish(z.number().int().positive()),
  text: nullish(z.strictObject({ format: nullish(formatSchema), verbosity: nullish(z.enum(['low', 'medium', 'high'])) })),
  reasoning: nullish(
    z.looseObject({
      effort: nullish(z.enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max'])),
      summary: nullish(z.enum(['auto', 'concise', 'detailed'])),
      generate_summary: nullish(z.enum(['auto', 'concise', 'detailed'])),
    }),
  ),
  stream: nullish(z.boolean()),
  stream_options: nullish(z.strictObject({ include_obfuscation: nullish(z.boolean()) })),
  truncation: nullish(z.enum(['auto', 'disabled'])),
  include: nullish(z.array(z.enum(INCLUDABLE))),
  metadata: nullish(z.record(z.string().max(64), z.string().max(512))),
  prompt_cache_key: nullish(z.string().max(1024)),
  prompt_cache_retention: nullish(z.enum(['in_memory', '24h'])),
  /**
   * Sent as `store: false` when absent, to providers that store by default (ResponsesApiSpec):
   * a stored response belongs to the account of whichever key served it.
   */
  store: nullish(z.literal(false, { error: `store: true ${STATEFUL}; Keyrack sends store: false` })),
  background: nullish(z.literal(false, { error: `background: true ${STATEFUL} (the answer is fetched later from that account)` })),
  service_tier: nullish(z.enum(['auto', 'default'], { error: 'service_tier: flex, scale and priority are priced apart from the catalog; use auto or default' })),
  /**
   * End-user ids for the provider's abuse monitoring: accepted and not forwarded, as on
   * /v1/chat/completions (openaiWire.ts): Keyrack's user is the token's subject.
   */
  user: nullish(z.string().max(512)),
  safety_identifier: nullish(z.string().max(512)),
});
export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;

const IMPLEMENTED = new Set(Object.keys(responsesRequestSchema.shape));

/** Fields OpenAI defines that Keyrack refuses whatever their value (null aside), and why. */
const NOT_SUPPORTED = 'Keyrack does not support this parameter';
const REFUSED: ReadonlyMap<string, string> = new Map([
  ['previous_response_id', STATEFUL],
  ['conversation', STATEFUL],
  ['prompt', `refers to a template stored in one provider account: ${STATEFUL}`],
  ['context_management', NOT_SUPPORTED],
  ['moderation', NOT_SUPPORTED],
  ['prompt_cache_options', NOT_SUPPORTED],
]);

/** Not forwarded (see `user` above). */
const NOT_FORWARDED = ['user', 'safety_identifier'] as const;

export type ResponsesRead = { ok: true; wire: ResponsesRequest; body: Record<string, unknown> } | { ok: false; refusal: WireRefusal };

/** Reads a /v1/responses body: each top-level field known and of its type, the refused ones refused. */
export function readResponsesRequest(raw: unknown): ResponsesRead {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, refusal: { param: 'body', message: 'body: a JSON object is expected' } };
  const body = raw as Record<string, unknown>;
  for (const key in body) {
    if (IMPLEMENTED.has(key) || body[key] === null || body[key] === undefined) continue;
    return { ok: false, refusal: { param: key, message: `${key}: ${REFUSED.get(key) ?? 'unknown parameter'}` } };
  }
  const parsed = responsesRequestSchema.safeParse(body);
  if (!parsed.success) return { ok: false, refusal: refusalOf(parsed.error.issues[0], (path) => path) };
  return { ok: true, wire: parsed.data, body };
}

/**
 * The body sent upstream: the client's, with the catalog's model id, `store: false` where the
 * provider would store, and without the end-user ids.
 */
export function upstreamResponsesBody(body: Record<string, unknown>, upstreamModel: string, storesByDefault: boolean): string {
  const out: Record<string, unknown> = { ...body, model: upstreamModel };
  for (const key of NOT_FORWARDED) delete out[key];
  if (storesByDefault && (out.store === undefined || out.store === null)) out.store = false;
  return JSON.stringify(out);
}

/**
 * The input as chat messages, for the prompt limits and the budget's bound (checkPrompt,
 * promptTokensAtMost): instructions and tool definitions as system text, messages with their
 * text and images, calls and their outputs. Only counted, never sent.
 */
export function promptMessagesOf(wire: ResponsesRequest): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (wire.instructions) messages.push({ role: 'system', content: wire.instructions });
  if (wire.tools?.length) messages.push({ role: 'system', content: JSON.stringify(wire.tools) });
  if (typeof wire.input === 'string') {
    messages.push({ role: 'user', content: wire.input });
    return messages;
  }
  for (const item of wire.input) {
    // Roles do not change a count: every text is counted as a user message's.
    if (item.type === 'message') {
      messages.push({ role: 'user', content: typeof item.content === 'string' ? item.content : partsOf(item.content) });
      continue;
    }
    switch (item.type) {
      case 'function_call':
        messages.push({ role: 'assistant', content: '', toolCalls: [{ id: item.call_id, name: item.name, arguments: item.arguments }] });
        break;
      case 'custom_tool_call':
        messages.push({ role: 'assistant', content: '', toolCalls: [{ id: item.call_id, name: item.name, arguments: item.input }] });
        break;
      case 'function_call_output':
      case 'custom_tool_call_output':
        messages.push(typeof item.output === 'string' ? { role: 'tool', toolCallId: item.call_id, content: item.output } : { role: 'user', content: partsOf(item.output) });
        break;
      case 'reasoning':
        // Encrypted reasoning is billed as input when sent back: its length is the bound's best guess.
        messages.push({ role: 'assistant', content: (item.encrypted_content ?? '') + item.summary.map((s) => s.text).join('') });
        break;
    }
  }
  return messages;
}

type ContentPart = z.infer<typeof contentPartSchema>;

type UserContent = Extract<ChatMessage, { role: 'user' }>['content'];

/** Parts as the chat model counts them: text parts, image parts (a fixed token count each), a file's data as text. */
function partsOf(parts: readonly ContentPart[]): UserContent {
  const out: Exclude<UserContent, string> = [];
  for (const part of parts) {
    if (part.type === 'input_image') out.push({ type: 'image', url: part.image_url });
    else if (part.type === 'input_file') out.push({ type: 'text', text: part.file_data ?? part.file_url ?? '' });
    else out.push({ type: 'text', text: part.type === 'refusal' ? part.refusal : part.text });
  }
  return out.length > 0 ? out : '';
}

/** OpenAI's Responses usage object, as `response.completed` and the whole answer carry it. */
const responsesUsageSchema = z.object({
  input_tokens: z.number().int().nonnegative(),
  output_tokens: z.number().int().nonnegative(),
  input_tokens_details: nullish(z.object({ cached_tokens: nullish(z.number().int().nonnegative()) })),
  output_tokens_details: nullish(z.object({ reasoning_tokens: nullish(z.number().int().nonnegative()) })),
});

/**
 * A response object's usage in the gateway's terms (cached tokens inside the input, reasoning
 * tokens inside the output, as OpenAI counts both), or null when it has none.
 */
export function usageOfResponse(response: unknown): TokenUsage | null {
  if (typeof response !== 'object' || response === null) return null;
  const parsed = responsesUsageSchema.safeParse((response as { usage?: unknown }).usage);
  if (!parsed.success) return null;
  const u = parsed.data;
  return {
    inputTokens: u.input_tokens,
    outputTokens: u.output_tokens,
    cachedInputTokens: u.input_tokens_details?.cached_tokens ?? 0,
    reasoningTokens: u.output_tokens_details?.reasoning_tokens ?? 0,
  };
}
