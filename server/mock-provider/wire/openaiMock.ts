import { z } from 'zod';
import { formatGoDuration, retryAfterHeader } from '../durations';
import { textOf, type MockAnswerPlan, type MockChatInput, type MockToolCall } from '../mockAnswer';
import { jsonReply, type MockDialect, type MockErrorInfo, type MockReply } from '../mockDialect';
import type { RateWindow } from '../RpmLimiter';
import { parseResponsesRequest, responsesReply, responsesStream } from './openaiResponsesMock';
import { openaiEmbeddingsReply } from './embeddingsMock';

/**
 * OpenAI Chat Completions (platform.openai.com/docs/api-reference/chat) under `/openai/v1`.
 * Streams are `data: <chunk>\n\n` lines ending in `data: [DONE]`; with
 * `stream_options.include_usage` "an additional chunk will be streamed before the data: [DONE]
 * message. The usage field on this chunk shows the token usage statistics for the entire
 * request, and the choices field will always be an empty array", and every other chunk has
 * `usage: null`. Errors are `{ error: { message, type, param, code } }`.
 */

const messageSchema = z.object({ role: z.string(), content: z.unknown().optional(), tool_call_id: z.string().nullish() });
const toolSchema = z.object({
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1), description: z.string().nullish(), parameters: z.record(z.string(), z.unknown()).nullish(), strict: z.boolean().nullish() }),
});
const requestSchema = z.object({
  model: z.string({ error: 'you must provide a model parameter' }).min(1, 'you must provide a model parameter'),
  messages: z.array(messageSchema, { error: "Missing required parameter: 'messages'." }),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  max_tokens: z.number().int().nullish(),
  max_completion_tokens: z.number().int().nullish(),
  tools: z.array(toolSchema).nullish(),
  tool_choice: z.union([z.enum(['auto', 'none', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })]).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('text') }),
      z.object({ type: z.literal('json_object') }),
      z.object({ type: z.literal('json_schema'), json_schema: z.object({ name: z.string(), schema: z.record(z.string(), z.unknown()).nullish(), strict: z.boolean().nullish() }) }),
    ])
    .nullish(),
  reasoning_effort: z.string().nullish(),
});

const MODELS = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini', 'o4-mini'];
const MODELS_BODY = JSON.stringify({
  object: 'list',
  data: MODELS.map((id) => ({ id, object: 'model', created: 1_715_367_049, owned_by: 'system' })),
});

function err(status: number, message: string, type: string, code: string | null, headers: Record<string, string> = {}, param: string | null = null): MockReply {
  return jsonReply(status, { error: { message, type, param, code } }, headers);
}

/** The `x-ratelimit-*` family. Tokens are not limited by the mock; their headers say so. */
function windowHeaders(window: RateWindow): Record<string, string> {
  return {
    'x-ratelimit-limit-requests': String(window.limit),
    'x-ratelimit-remaining-requests': String(window.remaining),
    'x-ratelimit-reset-requests': formatGoDuration(window.resetMs),
    'x-ratelimit-limit-tokens': '1000000',
    'x-ratelimit-remaining-tokens': '1000000',
    'x-ratelimit-reset-tokens': '0s',
  };
}

function errorOf(info: MockErrorInfo): MockReply {
  switch (info.kind) {
    case 'missingKey':
      return err(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.", 'invalid_request_error', null);
    case 'rejected':
      return err(401, `Incorrect API key provided: ${info.mask ?? '…'}. You can find your API key at https://platform.openai.com/account/api-keys.`, 'invalid_request_error', 'invalid_api_key');
    case 'forbidden':
      return err(403, 'You are not allowed to sample from this model', 'invalid_request_error', 'model_not_allowed');
    case 'quota':
    case 'billing':
      // "429 - You exceeded your current quota, please check your plan and billing details".
      return err(429, 'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.', 'insufficient_quota', 'insufficient_quota');
    case 'rateLimit': {
      const retryAfterMs = info.retryAfterMs ?? info.window?.retryAfterMs ?? 1000;
      const window = info.window ?? { limit: 1, remaining: 0, retryAfterMs, resetMs: retryAfterMs };
      const seconds = Math.max(0, retryAfterMs / 1000);
      return err(
        429,
        `Rate limit reached for ${info.model ?? 'gpt-4o-mini'} in organization org-mock on requests per min (RPM): Limit ${window.limit}, Used ${window.limit - window.remaining}, Requested 1. Please try again in ${formatGoDuration(retryAfterMs)}. Visit https://platform.openai.com/account/rate-limits to learn more.`,
        'requests',
        'rate_limit_exceeded',
        { 'retry-after': retryAfterHeader(seconds * 1000), ...windowHeaders(window) },
      );
    }
    case 'overloaded':
      return err(503, 'The engine is currently overloaded, please try again later.', 'server_error', null);
    case 'serverError':
      return err(info.status ?? 500, 'The server had an error while processing your request. Sorry about that!', 'server_error', null);
    case 'notFound':
      return err(404, info.detail ?? 'Invalid URL', 'invalid_request_error', info.model ? 'model_not_found' : null);
    case 'badRequest':
      return err(400, info.detail ?? 'Invalid request', 'invalid_request_error', null);
  }
}

function usageOf(plan: MockAnswerPlan) {
  return {
    prompt_tokens: plan.promptTokens,
    completion_tokens: plan.completionTokens,
    total_tokens: plan.promptTokens + plan.completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

const idOf = (plan: MockAnswerPlan) => `chatcmpl-mock${plan.serial}`;
const finishOf = (plan: MockAnswerPlan) => (plan.toolCalls.length > 0 ? 'tool_calls' : plan.truncated ? 'length' : 'stop');
const wireCall = (call: MockToolCall) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } });

/** Images in user messages (`image_url` parts), as OpenAI counts what it was shown. */
function imagesIn(content: unknown): number {
  if (!Array.isArray(content)) return 0;
  let count = 0;
  for (const part of content) if (part && typeof part === 'object' && (part as { type?: unknown }).type === 'image_url') count += 1;
  return count;
}

/** Argument text of a streamed call in fragments of about 8 characters, as models stream them. */
function argumentPieces(text: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += 8) pieces.push(text.slice(i, i + 8));
  return pieces;
}

export const openaiMock: MockDialect = {
  provider: 'openai',
  prefix: '/openai/v1',

  route(method, path) {
    if (method === 'POST' && path === '/chat/completions') return { kind: 'chat', stream: false };
    if (method === 'POST' && path === '/responses') return { kind: 'chat', stream: false, api: 'responses' };
    if (method === 'GET' && path === '/models') return { kind: 'models' };
    if (method === 'POST' && path === '/embeddings') return { kind: 'embeddings' };
    return undefined;
  },

  embed: (body) => openaiEmbeddingsReply(body),

  keyOf(headers) {
    const auth = headers.authorization;
    if (!auth || !/^bearer /i.test(auth)) return undefined;
    const key = auth.slice(7).trim();
    return key || undefined;
  },

  parseChat(body, endpoint) {
    if (endpoint.api === 'responses') return parseResponsesRequest(body);
    const parsed = requestSchema.safeParse(body);
    if (!parsed.success) return { error: parsed.error.issues[0]?.message ?? 'Invalid request' };
    const r = parsed.data;
    let promptChars = 0;
    let lastUserText = '';
    let imageCount = 0;
    for (const m of r.messages) {
      const text = textOf(m.content);
      promptChars += text.length;
      if (m.role === 'user') {
        lastUserText = text;
        imageCount += imagesIn(m.content);
      }
      if (m.role === 'tool' && !m.tool_call_id) return { error: "Missing required parameter: 'messages[].tool_call_id'." };
    }
    const tools = r.tools ?? [];
    const choice = r.tool_choice;
    // As OpenAI: a named choice must name one of the tools.
    if (typeof choice === 'object' && choice && !tools.some((t) => t.function.name === choice.function.name)) {
      return { error: `Invalid value for 'tool_choice': function '${choice.function.name}' not found in 'tools'.` };
    }
    const format = r.response_format;
    const input: MockChatInput = {
      model: r.model,
      stream: r.stream === true,
      includeUsage: r.stream_options?.include_usage === true,
      maxTokens: r.max_completion_tokens ?? r.max_tokens ?? undefined,
      lastUserText,
      promptChars,
      lastIsToolResult: r.messages[r.messages.length - 1]?.role === 'tool',
    };
    if (tools.length > 0) input.tools = tools.map((t) => ({ name: t.function.name, ...(t.function.parameters ? { parameters: t.function.parameters } : {}) }));
    if (choice) input.toolChoice = typeof choice === 'string' ? choice : { name: choice.function.name };
    if (r.parallel_tool_calls !== undefined && r.parallel_tool_calls !== null) input.parallelToolCalls = r.parallel_tool_calls;
    if (format?.type === 'json_object') input.responseFormat = { type: 'json_object' };
    if (format?.type === 'json_schema') input.responseFormat = format.json_schema.schema ? { type: 'json_schema', schema: format.json_schema.schema } : { type: 'json_object' };
    if (imageCount > 0) input.imageCount = imageCount;
    // A reasoning model asked to think shows its thought as `reasoning_content` (DeepSeek's field).
    if (r.reasoning_effort && r.reasoning_effort !== 'none') input.thinking = true;
    return input;
  },

  error: errorOf,
  windowHeaders,
  commonHeaders: (serial) => ({ 'x-request-id': `req_mock${serial}`, 'openai-version': '2020-10-01' }),
  models: () => MODELS_BODY,

  reply(plan) {
    if (plan.responses) return responsesReply(plan);
    return JSON.stringify({
      id: idOf(plan),
      object: 'chat.completion',
      created: plan.created,
      model: plan.model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            // OpenAI's: null when the answer is only tool calls.
            content: plan.toolCalls.length > 0 && plan.text === '' ? null : plan.text,
            ...(plan.reasoning !== null ? { reasoning_content: plan.reasoning } : {}),
            ...(plan.toolCalls.length > 0 ? { tool_calls: plan.toolCalls.map(wireCall) } : {}),
            refusal: null,
            annotations: [],
          },
          logprobs: null,
          finish_reason: finishOf(plan),
        },
      ],
      usage: usageOf(plan),
      service_tier: 'default',
      system_fingerprint: 'fp_mock',
    });
  },

  stream(plan) {
    if (plan.responses) return responsesStream(plan, (info) => (JSON.parse(errorOf(info).body) as { error: { message: string; code: string | null } }).error);
    const usageField = plan.includeUsage ? ',"usage":null' : '';
    const open = `data: {"id":"${idOf(plan)}","object":"chat.completion.chunk","created":${plan.created},"model":${JSON.stringify(plan.model)},"service_tier":"default","system_fingerprint":"fp_mock","choices":`;
    const deltaOpen = `${open}[{"index":0,"delta":{"content":`;
    const deltaClose = `},"logprobs":null,"finish_reason":null}]${usageField}}\n\n`;
    const chunkOf = (delta: unknown) => `${open}[${JSON.stringify({ index: 0, delta, logprobs: null, finish_reason: null })}]${usageField}}\n\n`;
    // Thinking first, as DeepSeek streams it (content null beside it).
    const thought = plan.reasoning !== null ? chunkOf({ content: null, reasoning_content: plan.reasoning }) : '';
    // Each call as OpenAI streams it: a chunk with its index, id, type and name (arguments ''),
    // then its arguments in fragments, each chunk carrying only the index and the fragment.
    let calls = '';
    for (const [index, call] of plan.toolCalls.entries()) {
      calls += chunkOf({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] });
      for (const piece of argumentPieces(call.arguments)) calls += chunkOf({ tool_calls: [{ index, function: { arguments: piece } }] });
    }
    return {
      contentType: 'text/event-stream; charset=utf-8',
      head: () =>
        `${open}[{"index":0,"delta":{"role":"assistant","content":${plan.toolCalls.length > 0 ? 'null' : '""'},"refusal":null},"logprobs":null,"finish_reason":null}]${usageField}}\n\n` + thought,
      delta: (text) => deltaOpen + JSON.stringify(text) + deltaClose,
      tail: () =>
        calls +
        `${open}[{"index":0,"delta":{},"logprobs":null,"finish_reason":"${finishOf(plan)}"}]${usageField}}\n\n` +
        (plan.includeUsage ? `${open}[],"usage":${JSON.stringify(usageOf(plan))}}\n\n` : '') +
        'data: [DONE]\n\n',
      malformed: () => `${deltaOpen}"unterminated\n\n`,
      // Mid-stream failures arrive as a data line holding an error object (the SDK throws APIError on it).
      error: (info) => `data: ${errorOf(info).body}\n\n`,
    };
  },
};
