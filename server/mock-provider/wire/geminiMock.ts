import { z } from 'zod';
import { formatProtoDuration } from '../durations';
import { textOf, type MockAnswerPlan } from '../mockAnswer';
import { jsonReply, type MockDialect, type MockErrorInfo, type MockReply } from '../mockDialect';

/**
 * Gemini API v1beta (ai.google.dev/api/generate-content) under `/gemini`.
 * `models/{model}:generateContent` answers one GenerateContentResponse;
 * `:streamGenerateContent?alt=sse` sends one per `data:` line (no end marker; the last one has
 * `finishReason`), without `alt=sse` a JSON array of them. `usageMetadata` is cumulative.
 * Errors are google.rpc.Status: `{ error: { code, message, status, details } }`; a bad key is
 * "400 INVALID_ARGUMENT ... API key not valid" with an ErrorInfo reason API_KEY_INVALID, and
 * a 429 RESOURCE_EXHAUSTED carries QuotaFailure and RetryInfo (`"retryDelay": "7s"`).
 */

const requestSchema = z.object({
  contents: z.array(
    z.object({ role: z.string().optional(), parts: z.array(z.object({ text: z.string().optional() }).loose()) }),
    { error: '* GenerateContentRequest.contents: contents is not specified' },
  ),
  systemInstruction: z.object({ parts: z.array(z.object({ text: z.string().optional() }).loose()) }).optional(),
  generationConfig: z.object({ maxOutputTokens: z.number().int().optional() }).loose().optional(),
});

const GOOGLE_JSON = 'application/json; charset=UTF-8';

const MODELS = [
  { id: 'gemini-2.5-flash', displayName: 'Gemini 2.5 Flash', version: '001', output: 65_536 },
  { id: 'gemini-2.5-pro', displayName: 'Gemini 2.5 Pro', version: '2.5', output: 65_536 },
  { id: 'gemini-2.0-flash', displayName: 'Gemini 2.0 Flash', version: '2.0', output: 8192 },
];
const MODELS_BODY = JSON.stringify({
  models: MODELS.map((m) => ({
    name: `models/${m.id}`,
    version: m.version,
    displayName: m.displayName,
    description: `${m.displayName} (mock)`,
    inputTokenLimit: 1_048_576,
    outputTokenLimit: m.output,
    supportedGenerationMethods: ['generateContent', 'countTokens'],
  })),
});

function status(code: number, statusName: string, message: string, details?: unknown[]): { error: Record<string, unknown> } {
  return { error: { code, message, status: statusName, ...(details ? { details } : {}) } };
}

function err(code: number, statusName: string, message: string, details?: unknown[]): MockReply {
  return jsonReply(code, status(code, statusName, message, details), {}, GOOGLE_JSON);
}

const QUOTA_MESSAGE =
  'You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.';

function quotaDetails(quotaId: string, model: string | undefined, retryDelaySeconds: number | undefined, limit: number): unknown[] {
  return [
    {
      '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
      violations: [
        {
          quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests',
          quotaId,
          quotaDimensions: { location: 'global', model: model ?? 'gemini-2.5-flash' },
          quotaValue: String(limit),
        },
      ],
    },
    { '@type': 'type.googleapis.com/google.rpc.Help', links: [{ description: 'Learn more about Gemini API quotas', url: 'https://ai.google.dev/gemini-api/docs/rate-limits' }] },
    ...(retryDelaySeconds !== undefined ? [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: formatProtoDuration(retryDelaySeconds) }] : []),
  ];
}

function statusOf(info: MockErrorInfo): { code: number; body: { error: Record<string, unknown> } } {
  const wrap = (code: number, statusName: string, message: string, details?: unknown[]) => ({ code, body: status(code, statusName, message, details) });
  switch (info.kind) {
    case 'missingKey':
      return wrap(403, 'PERMISSION_DENIED', "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.");
    case 'rejected':
      return wrap(400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', [
        { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } },
        { '@type': 'type.googleapis.com/google.rpc.LocalizedMessage', locale: 'en-US', message: 'API key not valid. Please pass a valid API key.' },
      ]);
    case 'forbidden':
      return wrap(403, 'PERMISSION_DENIED', 'Permission denied: Consumer has been suspended.');
    case 'quota':
    case 'billing':
      // A per-day quota does not refill until the daily reset: no RetryInfo worth waiting for.
      return wrap(429, 'RESOURCE_EXHAUSTED', QUOTA_MESSAGE, quotaDetails('GenerateRequestsPerDayPerProjectPerModel-FreeTier', info.model, undefined, 250));
    case 'rateLimit': {
      const retryAfterMs = info.retryAfterMs ?? info.window?.retryAfterMs ?? 1000;
      return wrap(429, 'RESOURCE_EXHAUSTED', QUOTA_MESSAGE, quotaDetails('GenerateRequestsPerMinutePerProjectPerModel-FreeTier', info.model, Math.ceil(retryAfterMs / 1000), info.window?.limit ?? 10));
    }
    case 'overloaded':
      return wrap(503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.');
    case 'serverError':
      return wrap(info.status ?? 500, info.status === 503 ? 'UNAVAILABLE' : 'INTERNAL', 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting');
    case 'notFound':
      return wrap(404, 'NOT_FOUND', info.detail ?? 'Requested entity was not found.');
    case 'badRequest':
      return wrap(400, 'INVALID_ARGUMENT', info.detail ?? 'Invalid JSON payload received.');
  }
}

function errorOf(info: MockErrorInfo): MockReply {
  const { code, body } = statusOf(info);
  return { status: code, headers: { 'content-type': GOOGLE_JSON }, body: JSON.stringify(body) };
}

const ROUTE = /^\/(v1beta|v1)\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;
const finishOf = (plan: MockAnswerPlan) => (plan.truncated ? 'MAX_TOKENS' : 'STOP');

export const geminiMock: MockDialect = {
  provider: 'gemini',
  prefix: '/gemini',

  route(method, path) {
    if (method === 'GET' && (path === '/v1beta/models' || path === '/v1/models')) return { kind: 'models' };
    const match = method === 'POST' ? ROUTE.exec(path) : null;
    if (!match) return undefined;
    return { kind: 'chat', stream: match[3] === 'streamGenerateContent', model: decodeURIComponent(match[2] as string) };
  },

  keyOf(headers, query) {
    const header = headers['x-goog-api-key'];
    const key = typeof header === 'string' && header.trim() ? header.trim() : query.get('key')?.trim();
    return key || undefined;
  },

  parseChat(body, endpoint) {
    const parsed = requestSchema.safeParse(body);
    if (!parsed.success) return { error: parsed.error.issues[0]?.message ?? 'Invalid JSON payload received.' };
    const r = parsed.data;
    let promptChars = textOf(r.systemInstruction?.parts).length;
    let lastUserText = '';
    for (const c of r.contents) {
      const text = textOf(c.parts);
      promptChars += text.length;
      if (c.role !== 'model') lastUserText = text;
    }
    return {
      model: endpoint.model ?? 'gemini-2.5-flash',
      stream: endpoint.stream,
      includeUsage: true,
      maxTokens: r.generationConfig?.maxOutputTokens,
      lastUserText,
      promptChars,
    };
  },

  error: errorOf,
  // Gemini sends no rate-limit headers; a 429's body says when to come back.
  windowHeaders: () => ({}),
  commonHeaders: () => ({}),
  models: () => MODELS_BODY,

  reply(plan) {
    return JSON.stringify({
      candidates: [{ content: { parts: [{ text: plan.text }], role: 'model' }, finishReason: finishOf(plan), index: 0 }],
      usageMetadata: {
        promptTokenCount: plan.promptTokens,
        candidatesTokenCount: plan.completionTokens,
        totalTokenCount: plan.promptTokens + plan.completionTokens,
        promptTokensDetails: [{ modality: 'TEXT', tokenCount: plan.promptTokens }],
      },
      modelVersion: plan.model,
      responseId: `mock${plan.serial}`,
    });
  },

  stream(plan, query) {
    const sse = query.get('alt') === 'sse';
    const tailFields = `,"modelVersion":${JSON.stringify(plan.model)},"responseId":"mock${plan.serial}"}`;
    const open = '{"candidates":[{"content":{"parts":[{"text":';
    const usage = (candidates: number) =>
      `"usageMetadata":{"promptTokenCount":${plan.promptTokens},"candidatesTokenCount":${candidates},"totalTokenCount":${plan.promptTokens + candidates}}`;
    // SSE frames end in CRLF CRLF as Google's servers write them; the array form separates with commas.
    const frame = sse ? (json: string) => `data: ${json}\r\n\r\n` : (json: string, first = false) => `${first ? '' : ','}${json}\r\n`;
    return {
      contentType: sse ? 'text/event-stream' : GOOGLE_JSON,
      head: () => (sse ? '' : '['),
      delta: (text, index) => frame(`${open}${JSON.stringify(text)}}],"role":"model"},"index":0}],${usage(index + 1)}${tailFields}`, index === 0),
      tail: () =>
        frame(`${open}""}],"role":"model"},"finishReason":"${finishOf(plan)}","index":0}],${usage(plan.completionTokens)}${tailFields}`, plan.chunks.length === 0) +
        (sse ? '' : ']'),
      malformed: () => frame(`${open}"unterminated`),
      error: (info) => frame(JSON.stringify(statusOf(info).body)) + (sse ? '' : ']'),
    };
  },
};
