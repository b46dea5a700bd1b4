import { z } from 'zod';
import { geminiEmbedReply } from './embeddingsMock';
import { formatProtoDuration } from '../durations';
import { textOf, type MockAnswerPlan, type MockChatInput, type MockTool } from '../mockAnswer';
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

const jsonObject = z.record(z.string(), z.unknown());
const partSchema = z
  .object({
    text: z.string().optional(),
    inlineData: z.object({ mimeType: z.string(), data: z.string() }).optional(),
    fileData: z.object({ mimeType: z.string().optional(), fileUri: z.string() }).optional(),
    functionCall: z.object({ name: z.string(), args: jsonObject.optional(), id: z.string().optional() }).optional(),
    functionResponse: z.object({ name: z.string(), response: jsonObject.optional(), id: z.string().optional() }).optional(),
  })
  .loose();
type Part = z.infer<typeof partSchema>;

const requestSchema = z.object({
  contents: z.array(
    z.object({ role: z.string().optional(), parts: z.array(partSchema) }),
    { error: '* GenerateContentRequest.contents: contents is not specified' },
  ),
  systemInstruction: z.object({ parts: z.array(z.object({ text: z.string().optional() }).loose()) }).optional(),
  tools: z
    .array(
      z
        .object({
          functionDeclarations: z
            .array(z.object({ name: z.string(), description: z.string().optional(), parameters: jsonObject.optional(), parametersJsonSchema: jsonObject.optional() }).loose())
            .optional(),
        })
        .loose(),
    )
    .optional(),
  toolConfig: z
    .object({
      functionCallingConfig: z
        .object({ mode: z.enum(['MODE_UNSPECIFIED', 'AUTO', 'ANY', 'NONE', 'VALIDATED']).optional(), allowedFunctionNames: z.array(z.string()).optional() })
        .optional(),
    })
    .loose()
    .optional(),
  generationConfig: z
    .object({
      maxOutputTokens: z.number().int().optional(),
      responseMimeType: z.string().optional(),
      responseSchema: jsonObject.optional(),
      responseJsonSchema: jsonObject.optional(),
      thinkingConfig: z.object({ thinkingBudget: z.number().int().optional(), includeThoughts: z.boolean().optional() }).loose().optional(),
    })
    .loose()
    .optional(),
});
type GeminiMockRequest = z.infer<typeof requestSchema>;

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
const EMBED_ROUTE = /^\/(v1beta|v1)\/models\/([^/:]+):(batchEmbedContents|embedContent)$/;
const finishOf = (plan: MockAnswerPlan) => (plan.truncated ? 'MAX_TOKENS' : 'STOP');

export const geminiMock: MockDialect = {
  provider: 'gemini',
  prefix: '/gemini',

  route(method, path) {
    if (method === 'GET' && (path === '/v1beta/models' || path === '/v1/models')) return { kind: 'models' };
    const embed = method === 'POST' ? EMBED_ROUTE.exec(path) : null;
    if (embed) return { kind: 'embeddings', model: decodeURIComponent(embed[2] as string), batch: embed[3] === 'batchEmbedContents' };
    const match = method === 'POST' ? ROUTE.exec(path) : null;
    if (!match) return undefined;
    return { kind: 'chat', stream: match[3] === 'streamGenerateContent', model: decodeURIComponent(match[2] as string) };
  },

  embed: (body, endpoint) => geminiEmbedReply(body, endpoint.model ?? '', endpoint.batch === true),

  keyOf(headers, query) {
    const header = headers['x-goog-api-key'];
    const key = typeof header === 'string' && header.trim() ? header.trim() : query.get('key')?.trim();
    return key || undefined;
  },

  parseChat(body, endpoint) {
    const parsed = requestSchema.safeParse(body);
    if (!parsed.success) return { error: parsed.error.issues[0]?.message ?? 'Invalid JSON payload received.' };
    const r = parsed.data;
    const refusal = refusalOf(r);
    if (refusal) return { error: refusal };
    let promptChars = textOf(r.systemInstruction?.parts).length;
    let lastUserText = '';
    let imageCount = 0;
    for (const c of r.contents) {
      const text = textOf(c.parts);
      promptChars += text.length;
      for (const part of c.parts) {
        if (part.functionCall) promptChars += part.functionCall.name.length + JSON.stringify(part.functionCall.args ?? {}).length;
        if (part.functionResponse) promptChars += JSON.stringify(part.functionResponse.response ?? {}).length;
        if (isImage(part)) imageCount += 1;
      }
      // A turn of function responses only keeps the question they answer as the last user text.
      if (c.role !== 'model' && text) lastUserText = text;
    }
    const lastParts = r.contents[r.contents.length - 1]?.parts ?? [];
    const config = r.generationConfig;
    const thinking = config?.thinkingConfig;
    return {
      model: endpoint.model ?? 'gemini-2.5-flash',
      stream: endpoint.stream,
      includeUsage: true,
      maxTokens: config?.maxOutputTokens,
      lastUserText,
      promptChars,
      ...toolsOf(r),
      lastIsToolResult: lastParts.some((part) => part.functionResponse),
      ...(config?.responseMimeType === 'application/json'
        ? { responseFormat: config.responseJsonSchema || config.responseSchema ? { type: 'json_schema', schema: (config.responseJsonSchema ?? openApiToJsonSchema(config.responseSchema)) as Record<string, unknown> } : { type: 'json_object' } }
        : {}),
      ...(imageCount > 0 ? { imageCount } : {}),
      // Thought summaries come only with includeThoughts; a zero budget turns thinking off.
      thinking: thinking?.includeThoughts === true && thinking.thinkingBudget !== 0,
    };
  },

  error: errorOf,
  // Gemini sends no rate-limit headers; a 429's body says when to come back.
  windowHeaders: () => ({}),
  commonHeaders: () => ({}),
  models: () => MODELS_BODY,

  reply(plan) {
    return JSON.stringify({
      candidates: [{ content: { parts: answerParts(plan), role: 'model' }, finishReason: finishOf(plan), index: 0 }],
      usageMetadata: usageOf(plan, plan.completionTokens - thoughtTokens(plan)),
      modelVersion: plan.model,
      responseId: `mock${plan.serial}`,
    });
  },

  stream(plan, query) {
    const sse = query.get('alt') === 'sse';
    const tailFields = `,"modelVersion":${JSON.stringify(plan.model)},"responseId":"mock${plan.serial}"}`;
    const open = '{"candidates":[{"content":{"parts":[{"text":';
    const usage = (candidates: number) => `"usageMetadata":${JSON.stringify(usageOf(plan, candidates))}`;
    // SSE frames end in CRLF CRLF as Google's servers write them; the array form separates with commas.
    let frames = 0;
    const frame = sse ? (json: string) => `data: ${json}\r\n\r\n` : (json: string) => `${frames++ === 0 ? '' : ','}${json}\r\n`;
    // A thinking model's thought summary streams first, in a chunk of its own.
    const thought = () =>
      plan.reasoning === null ? '' : frame(`${open}${JSON.stringify(plan.reasoning)},"thought":true}],"role":"model"},"index":0}],${usage(0)}${tailFields}`);
    const answer = plan.completionTokens - thoughtTokens(plan);
    // Calls come whole, in the last chunk, which says STOP; a text answer ends with an empty part.
    const lastParts = plan.toolCalls.length > 0 ? JSON.stringify(callParts(plan)).slice(1, -1) : '{"text":""}';
    return {
      contentType: sse ? 'text/event-stream' : GOOGLE_JSON,
      head: () => (sse ? '' : '[') + thought(),
      delta: (text, index) => frame(`${open}${JSON.stringify(text)}}],"role":"model"},"index":0}],${usage(index + 1)}${tailFields}`),
      tail: () => frame(`{"candidates":[{"content":{"parts":[${lastParts}],"role":"model"},"finishReason":"${finishOf(plan)}","index":0}],${usage(answer)}${tailFields}`) + (sse ? '' : ']'),
      malformed: () => frame(`${open}"unterminated`),
      error: (info) => frame(JSON.stringify(statusOf(info).body)) + (sse ? '' : ']'),
    };
  },
};

/** Stands in for the opaque signature a thinking model puts on its first function call part (Keyrack does not read it). */
const THOUGHT_SIGNATURE = 'CiQBmockSignatureForTheFirstFunctionCallPartAAAAAAAAAAAAAAAAAAAAAA==';

/** The parts of a whole answer: the thought first (when thinking), then the calls or the text. */
function answerParts(plan: MockAnswerPlan): unknown[] {
  const parts: unknown[] = plan.reasoning !== null ? [{ text: plan.reasoning, thought: true }] : [];
  if (plan.toolCalls.length > 0) parts.push(...callParts(plan));
  else parts.push({ text: plan.text });
  return parts;
}

/** functionCall parts as the Gemini API sends them: name and args (an object), no id (2.x models leave it out). */
function callParts(plan: MockAnswerPlan): unknown[] {
  return plan.toolCalls.map((call, i) => ({
    functionCall: { name: call.name, args: JSON.parse(call.arguments) as unknown },
    ...(i === 0 && plan.reasoning !== null ? { thoughtSignature: THOUGHT_SIGNATURE } : {}),
  }));
}

function thoughtTokens(plan: MockAnswerPlan): number {
  return plan.reasoning === null ? 0 : Math.ceil(plan.reasoning.length / 4);
}

/** Gemini counts thoughts apart from the answer (`thoughtsTokenCount`, not in candidatesTokenCount). */
function usageOf(plan: MockAnswerPlan, candidates: number): Record<string, unknown> {
  const thoughts = thoughtTokens(plan);
  return {
    promptTokenCount: plan.promptTokens,
    candidatesTokenCount: candidates,
    totalTokenCount: plan.promptTokens + candidates + thoughts,
    ...(thoughts > 0 ? { thoughtsTokenCount: thoughts } : {}),
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: plan.promptTokens }],
  };
}

function isImage(part: Part): boolean {
  return Boolean(part.inlineData?.mimeType.startsWith('image/') || part.fileData?.mimeType?.startsWith('image/'));
}

/** The declared functions and the calling mode, as the shared plan takes them. */
function toolsOf(r: GeminiMockRequest): Pick<MockChatInput, 'tools' | 'toolChoice'> {
  const declarations = (r.tools ?? []).flatMap((tool) => tool.functionDeclarations ?? []);
  if (declarations.length === 0) return {};
  let tools: MockTool[] = declarations.map((d) => ({
    name: d.name,
    ...(d.parametersJsonSchema || d.parameters ? { parameters: (d.parametersJsonSchema ?? openApiToJsonSchema(d.parameters)) as Record<string, unknown> } : {}),
  }));
  const config = r.toolConfig?.functionCallingConfig;
  switch (config?.mode) {
    case 'NONE':
      return { tools, toolChoice: 'none' };
    case 'ANY': {
      const allowed = config.allowedFunctionNames;
      if (allowed?.length === 1) return { tools, toolChoice: { name: allowed[0] as string } };
      if (allowed) tools = tools.filter((tool) => allowed.includes(tool.name));
      return { tools, toolChoice: 'required' };
    }
    default:
      // AUTO, VALIDATED (AUTO with schema-held calls) and no config: the model decides.
      return { tools };
  }
}

/** What the Gemini API answers 400 INVALID_ARGUMENT for, among the fields the mock reads. */
function refusalOf(r: GeminiMockRequest): string | undefined {
  const config = r.generationConfig;
  if (config?.responseSchema && config.responseJsonSchema) return '* GenerateContentRequest.generation_config: response_schema and response_json_schema cannot both be set.';
  if ((config?.responseSchema || config?.responseJsonSchema) && config.responseMimeType !== 'application/json') {
    return '* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be application/json when a response schema is set.';
  }
  const names = new Set((r.tools ?? []).flatMap((tool) => tool.functionDeclarations ?? []).map((d) => d.name));
  for (const name of r.toolConfig?.functionCallingConfig?.allowedFunctionNames ?? []) {
    if (!names.has(name)) return `* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: function ${name} is not declared.`;
  }
  return undefined;
}

/** Gemini's OpenAPI-style Schema (`responseSchema`, `parameters`) names types in capitals (`OBJECT`); the plan reads JSON Schema. */
function openApiToJsonSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(openApiToJsonSchema);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) out[key] = key === 'type' && typeof value === 'string' ? value.toLowerCase() : key === 'enum' ? value : openApiToJsonSchema(value);
  return out;
}
