import { z } from 'zod';
import { retryAfterHeader } from '../durations';
import { textOf, type MockAnswerPlan, type MockToolCall, type MockToolChoice } from '../mockAnswer';
import { jsonReply, type MockDialect, type MockErrorInfo, type MockReply } from '../mockDialect';
import type { RateWindow } from '../RpmLimiter';

/**
 * Anthropic Messages (docs.anthropic.com/en/api/messages) under `/anthropic`. Streaming "Event
 * flow: message_start, then content blocks (content_block_start, one or more
 * content_block_delta, content_block_stop), then one or more message_delta events, then a final
 * message_stop. There may be ping events dispersed throughout." The usage in message_delta is
 * cumulative. Errors are `{ type: "error", error: { type, message } }`; 529 is overloaded_error.
 * Rate-limit headers: `anthropic-ratelimit-requests-reset` is "the time when the request rate
 * limit will be fully replenished, provided in RFC 3339 format".
 */

const textBlock = z.object({ type: z.literal('text'), text: z.string().min(1, 'text content blocks must be non-empty') });
const imageBlock = z.object({
  type: z.literal('image'),
  source: z.discriminatedUnion('type', [
    z.object({ type: z.literal('base64'), media_type: z.enum(['image/jpeg', 'image/png', 'image/gif', 'image/webp']), data: z.string().min(1) }),
    z.object({ type: z.literal('url'), url: z.string().url() }),
  ]),
});
const toolUseBlock = z.object({ type: z.literal('tool_use'), id: z.string().min(1), name: z.string().min(1), input: z.record(z.string(), z.unknown()) });
const toolResultBlock = z.object({
  type: z.literal('tool_result'),
  tool_use_id: z.string().min(1),
  content: z.union([z.string(), z.array(z.union([textBlock, imageBlock]))]).optional(),
  is_error: z.boolean().optional(),
});
const thinkingBlock = z.object({ type: z.literal('thinking'), thinking: z.string(), signature: z.string() });
const contentBlock = z.discriminatedUnion('type', [textBlock, imageBlock, toolUseBlock, toolResultBlock, thinkingBlock], {
  error: 'messages: content blocks are text, image, tool_use, tool_result or thinking',
});
type ContentBlock = z.infer<typeof contentBlock>;

const requestSchema = z.object({
  model: z.string({ error: 'model: Field required' }).min(1, 'model: Field required'),
  max_tokens: z.number({ error: 'max_tokens: Field required' }).int(),
  messages: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.union([z.string(), z.array(contentBlock)]) }), { error: 'messages: Field required' }),
  system: z.unknown().optional(),
  stream: z.boolean().optional(),
  stop_sequences: z.array(z.string()).optional(),
  tools: z
    .array(z.object({ name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'tools: name must match ^[a-zA-Z0-9_-]{1,64}$'), description: z.string().optional(), input_schema: z.record(z.string(), z.unknown()) }))
    .optional(),
  tool_choice: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
      z.object({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
      z.object({ type: z.literal('tool'), name: z.string(), disable_parallel_tool_use: z.boolean().optional() }),
      z.object({ type: z.literal('none') }),
    ])
    .optional(),
  thinking: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('enabled'), budget_tokens: z.number().int().min(1024, 'thinking.budget_tokens: Input should be greater than or equal to 1024') }),
      z.object({ type: z.literal('adaptive') }),
      z.object({ type: z.literal('disabled') }),
    ])
    .optional(),
  output_config: z
    .object({
      format: z.object({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()) }).nullish(),
      effort: z.enum(['low', 'medium', 'high', 'xhigh', 'max']).nullish(),
    })
    .optional(),
});
type AnthropicRequest = z.infer<typeof requestSchema>;
const countTokensSchema = requestSchema.omit({ max_tokens: true, stream: true, stop_sequences: true });

/** The prompt's characters as the mock counts them: the system prompt and every turn's text. */
function promptCharsOf(r: Pick<AnthropicRequest, 'system' | 'messages'>): number {
  let chars = textOf(r.system).length;
  for (const m of r.messages) chars += turnText(m.content).length;
  return chars;
}

/** The checks Anthropic makes that a schema cannot: the tool conversation's shape and the thinking budget. */
function conversationError(r: AnthropicRequest): string | undefined {
  if (r.thinking?.type === 'enabled' && r.thinking.budget_tokens >= r.max_tokens) return '`max_tokens` must be greater than `thinking.budget_tokens`';
  if (r.tool_choice?.type === 'tool' && !(r.tools ?? []).some((tool) => tool.name === (r.tool_choice as { name: string }).name)) {
    return `tool_choice: Tool '${r.tool_choice.name}' not found in provided tools`;
  }
  for (const [i, m] of r.messages.entries()) {
    if (m.role !== 'assistant' || typeof m.content === 'string') continue;
    const ids = m.content.flatMap((b) => (b.type === 'tool_use' ? [b.id] : []));
    if (ids.length === 0) continue;
    const next = r.messages[i + 1];
    const results = next && typeof next.content !== 'string' ? next.content : [];
    const leading = results.slice(0, ids.length).map((b) => (b.type === 'tool_result' ? b.tool_use_id : ''));
    if (next?.role !== 'user' || ids.some((id) => !leading.includes(id))) {
      return `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${ids.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
    }
  }
  return undefined;
}

/** A user turn's text as the mock echoes it: its text blocks and tool results' text. */
function turnText(content: string | ContentBlock[]): string {
  if (typeof content === 'string') return content;
  const texts: string[] = [];
  for (const block of content) {
    if (block.type === 'text') texts.push(block.text);
    else if (block.type === 'tool_result' && block.content !== undefined) texts.push(textOf(block.content));
  }
  return texts.join(' ');
}

function toolChoiceOf(choice: AnthropicRequest['tool_choice']): MockToolChoice | undefined {
  if (!choice) return undefined;
  switch (choice.type) {
    case 'any':
      return 'required';
    case 'tool':
      return { name: choice.name };
    default:
      return choice.type;
  }
}

const MODELS = [
  { id: 'claude-sonnet-4-5', display_name: 'Claude Sonnet 4.5', created_at: '2025-09-29T00:00:00Z' },
  { id: 'claude-haiku-4-5', display_name: 'Claude Haiku 4.5', created_at: '2025-10-15T00:00:00Z' },
  { id: 'claude-opus-4-1', display_name: 'Claude Opus 4.1', created_at: '2025-08-05T00:00:00Z' },
];
const MODELS_BODY = JSON.stringify({
  data: MODELS.map((m) => ({ type: 'model', ...m })),
  has_more: false,
  first_id: MODELS[0]?.id ?? null,
  last_id: MODELS[MODELS.length - 1]?.id ?? null,
});

function errorBody(type: string, message: string): { type: 'error'; error: { type: string; message: string } } {
  return { type: 'error', error: { type, message } };
}

function err(status: number, type: string, message: string, headers: Record<string, string> = {}): MockReply {
  return jsonReply(status, errorBody(type, message), headers);
}

function windowHeaders(window: RateWindow, now: number): Record<string, string> {
  const reset = new Date(now + window.resetMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    'anthropic-ratelimit-requests-limit': String(window.limit),
    'anthropic-ratelimit-requests-remaining': String(window.remaining),
    'anthropic-ratelimit-requests-reset': reset,
    // Tokens are not limited by the mock; the headers are there because the real API always sends them.
    'anthropic-ratelimit-tokens-limit': '1000000',
    'anthropic-ratelimit-tokens-remaining': '1000000',
    'anthropic-ratelimit-tokens-reset': new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
}

function errorOf(info: MockErrorInfo): MockReply {
  switch (info.kind) {
    case 'missingKey':
      return err(401, 'authentication_error', 'x-api-key header is required');
    case 'rejected':
      return err(401, 'authentication_error', 'invalid x-api-key');
    case 'forbidden':
      return err(403, 'permission_error', 'Your API key does not have permission to use the specified resource.');
    case 'quota':
      return err(400, 'invalid_request_error', 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.');
    case 'billing':
      return err(402, 'billing_error', 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.');
    case 'rateLimit': {
      const retryAfterMs = info.retryAfterMs ?? info.window?.retryAfterMs ?? 1000;
      const window = info.window ?? { limit: 1, remaining: 0, retryAfterMs, resetMs: retryAfterMs };
      return err(
        429,
        'rate_limit_error',
        `This request would exceed the rate limit for your organization (mock) of ${window.limit} requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.`,
        { 'retry-after': retryAfterHeader(retryAfterMs), ...windowHeaders(window, info.now) },
      );
    }
    case 'overloaded':
      return err(529, 'overloaded_error', 'Overloaded');
    case 'serverError':
      return err(info.status ?? 500, 'api_error', 'Internal server error');
    case 'notFound':
      return err(404, 'not_found_error', info.detail ?? 'Not found');
    case 'badRequest':
      return err(400, 'invalid_request_error', info.detail ?? 'Invalid request');
  }
}

const idOf = (plan: MockAnswerPlan) => `msg_mock${plan.serial}`;
/** Anthropic's tool_use ids look like `toolu_01...`. */
const toolIdOf = (call: MockToolCall) => call.id.replace(/^call_/, 'toolu_');
/** Opaque to clients; Anthropic checks it when a thinking block is sent back. */
const signatureOf = (plan: MockAnswerPlan) => Buffer.from(`mock-signature-${plan.serial}`).toString('base64');
const stopOf = (plan: MockAnswerPlan) => (plan.toolCalls.length > 0 ? 'tool_use' : plan.truncated ? 'max_tokens' : 'end_turn');
/** An answer with tool calls and no text has no text block (as Claude answers); any other has one. */
const hasTextBlock = (plan: MockAnswerPlan) => plan.chunks.length > 0 || plan.toolCalls.length === 0;
const usageOf = (plan: MockAnswerPlan, outputTokens: number) => ({
  input_tokens: plan.promptTokens,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  output_tokens: outputTokens,
  service_tier: 'standard',
});

const frame = (type: string, data: unknown) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

/** Streamed tool input arrives as partial JSON in pieces (input_json_delta), as Anthropic sends it. */
function jsonFragments(json: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < json.length; i += 12) out.push(json.slice(i, i + 12));
  return out;
}

export const anthropicMock: MockDialect = {
  provider: 'anthropic',
  prefix: '/anthropic',

  route(method, path) {
    if (method === 'POST' && path === '/v1/messages') return { kind: 'chat', stream: false };
    if (method === 'POST' && path === '/v1/messages/count_tokens') return { kind: 'countTokens' };
    if (method === 'GET' && path === '/v1/models') return { kind: 'models' };
    return undefined;
  },

  keyOf(headers) {
    const key = headers['x-api-key'];
    return typeof key === 'string' && key.trim() ? key.trim() : undefined;
  },

  missingHeader(headers) {
    return headers['anthropic-version'] ? undefined : 'anthropic-version: header is required';
  },

  parseChat(body) {
    const parsed = requestSchema.safeParse(body);
    if (!parsed.success) return { error: parsed.error.issues[0]?.message ?? 'Invalid request' };
    const r = parsed.data;
    const wrong = conversationError(r);
    if (wrong) return { error: wrong };
    const promptChars = promptCharsOf(r);
    let lastUserText = '';
    let imageCount = 0;
    for (const m of r.messages) {
      if (m.role === 'user') lastUserText = turnText(m.content);
      if (typeof m.content !== 'string') for (const block of m.content) if (block.type === 'image') imageCount += 1;
    }
    const last = r.messages[r.messages.length - 1];
    const toolChoice = toolChoiceOf(r.tool_choice);
    const format = r.output_config?.format;
    return {
      model: r.model,
      stream: r.stream === true,
      includeUsage: false,
      maxTokens: r.max_tokens,
      lastUserText,
      promptChars,
      ...(r.tools ? { tools: r.tools.map((tool) => ({ name: tool.name, parameters: tool.input_schema })) } : {}),
      ...(toolChoice ? { toolChoice } : {}),
      ...(r.tool_choice && 'disable_parallel_tool_use' in r.tool_choice && r.tool_choice.disable_parallel_tool_use ? { parallelToolCalls: false } : {}),
      lastIsToolResult: last?.role === 'user' && typeof last.content !== 'string' && last.content.some((b) => b.type === 'tool_result'),
      ...(format ? { responseFormat: { type: 'json_schema' as const, schema: format.schema } } : {}),
      imageCount,
      thinking: r.thinking !== undefined && r.thinking.type !== 'disabled',
    };
  },

  countTokens(body) {
    // Anthropic's count_tokens takes the create request without max_tokens (and stream); it answers `{ input_tokens }`.
    const parsed = countTokensSchema.safeParse(body);
    if (!parsed.success) return err(400, 'invalid_request_error', parsed.error.issues[0]?.message ?? 'Invalid request');
    const wrong = conversationError({ ...parsed.data, max_tokens: Number.MAX_SAFE_INTEGER });
    if (wrong) return err(400, 'invalid_request_error', wrong);
    // The same count an answer's usage reports for this prompt (planAnswer's promptTokens).
    return jsonReply(200, { input_tokens: Math.max(1, Math.ceil(promptCharsOf(parsed.data) / 4)) });
  },

  error: errorOf,
  windowHeaders,
  commonHeaders: (serial) => ({ 'request-id': `req_mock${serial}` }),
  models: () => MODELS_BODY,

  reply(plan) {
    const content: unknown[] = [];
    if (plan.reasoning !== null) content.push({ type: 'thinking', thinking: plan.reasoning, signature: signatureOf(plan) });
    if (hasTextBlock(plan)) content.push({ type: 'text', text: plan.text });
    for (const call of plan.toolCalls) content.push({ type: 'tool_use', id: toolIdOf(call), name: call.name, input: JSON.parse(call.arguments) });
    return JSON.stringify({
      id: idOf(plan),
      type: 'message',
      role: 'assistant',
      model: plan.model,
      content,
      stop_reason: stopOf(plan),
      stop_sequence: null,
      usage: usageOf(plan, plan.completionTokens),
    });
  },

  stream(plan) {
    const start = {
      type: 'message_start',
      message: { id: idOf(plan), type: 'message', role: 'assistant', model: plan.model, content: [], stop_reason: null, stop_sequence: null, usage: usageOf(plan, 1) },
    };
    // Blocks in order: thinking, text, tool calls; each content_block_* event names its block's index.
    const textIndex = plan.reasoning !== null ? 1 : 0;
    const firstToolIndex = textIndex + (hasTextBlock(plan) ? 1 : 0);
    const deltaOpen = `event: content_block_delta\ndata: {"type":"content_block_delta","index":${textIndex},"delta":{"type":"text_delta","text":`;
    return {
      contentType: 'text/event-stream; charset=utf-8',
      head: () => {
        let out = `event: message_start\ndata: ${JSON.stringify(start)}\n\n`;
        if (plan.reasoning !== null) {
          out +=
            frame('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }) +
            frame('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: plan.reasoning } }) +
            frame('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: signatureOf(plan) } }) +
            frame('content_block_stop', { type: 'content_block_stop', index: 0 });
        }
        if (hasTextBlock(plan)) out += frame('content_block_start', { type: 'content_block_start', index: textIndex, content_block: { type: 'text', text: '' } });
        return out + 'event: ping\ndata: {"type": "ping"}\n\n';
      },
      delta: (text) => `${deltaOpen}${JSON.stringify(text)}}}\n\n`,
      tail: () => {
        let out = hasTextBlock(plan) ? frame('content_block_stop', { type: 'content_block_stop', index: textIndex }) : '';
        for (const [i, call] of plan.toolCalls.entries()) {
          const index = firstToolIndex + i;
          out += frame('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: toolIdOf(call), name: call.name, input: {} } });
          for (const partial of jsonFragments(call.arguments)) {
            out += frame('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: partial } });
          }
          out += frame('content_block_stop', { type: 'content_block_stop', index });
        }
        return (
          out +
          `event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"${stopOf(plan)}","stop_sequence":null},"usage":{"output_tokens":${plan.completionTokens}}}\n\n` +
          'event: message_stop\ndata: {"type":"message_stop"}\n\n'
        );
      },
      malformed: () => `${deltaOpen}"unterminated\n\n`,
      error: (info) => `event: error\ndata: ${errorOf(info).body}\n\n`,
    };
  },
};
