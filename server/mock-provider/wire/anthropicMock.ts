import { z } from 'zod';
import { retryAfterHeader } from '../durations';
import { textOf, type MockAnswerPlan } from '../mockAnswer';
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

const requestSchema = z.object({
  model: z.string({ error: 'model: Field required' }).min(1, 'model: Field required'),
  max_tokens: z.number({ error: 'max_tokens: Field required' }).int(),
  messages: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.unknown() }), { error: 'messages: Field required' }),
  system: z.unknown().optional(),
  stream: z.boolean().optional(),
});

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
const stopOf = (plan: MockAnswerPlan) => (plan.truncated ? 'max_tokens' : 'end_turn');
const usageOf = (plan: MockAnswerPlan, outputTokens: number) => ({
  input_tokens: plan.promptTokens,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  output_tokens: outputTokens,
  service_tier: 'standard',
});

export const anthropicMock: MockDialect = {
  provider: 'anthropic',
  prefix: '/anthropic',

  route(method, path) {
    if (method === 'POST' && path === '/v1/messages') return { kind: 'chat', stream: false };
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
    let promptChars = textOf(r.system).length;
    let lastUserText = '';
    for (const m of r.messages) {
      const text = textOf(m.content);
      promptChars += text.length;
      if (m.role === 'user') lastUserText = text;
    }
    return { model: r.model, stream: r.stream === true, includeUsage: false, maxTokens: r.max_tokens, lastUserText, promptChars };
  },

  error: errorOf,
  windowHeaders,
  commonHeaders: (serial) => ({ 'request-id': `req_mock${serial}` }),
  models: () => MODELS_BODY,

  reply(plan) {
    return JSON.stringify({
      id: idOf(plan),
      type: 'message',
      role: 'assistant',
      model: plan.model,
      content: [{ type: 'text', text: plan.text }],
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
    const deltaOpen = 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":';
    return {
      contentType: 'text/event-stream; charset=utf-8',
      head: () =>
        `event: message_start\ndata: ${JSON.stringify(start)}\n\n` +
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n' +
        'event: ping\ndata: {"type": "ping"}\n\n',
      delta: (text) => `${deltaOpen}${JSON.stringify(text)}}}\n\n`,
      tail: () =>
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n' +
        `event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"${stopOf(plan)}","stop_sequence":null},"usage":{"output_tokens":${plan.completionTokens}}}\n\n` +
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
      malformed: () => `${deltaOpen}"unterminated\n\n`,
      error: (info) => `event: error\ndata: ${errorOf(info).body}\n\n`,
    };
  },
};
