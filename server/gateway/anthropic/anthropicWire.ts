import { z } from 'zod';
import type { GatewayErrorCode } from '../../../shared';

/**
 * Anthropic's Messages API as Keyrack's `POST /v1/messages` takes it (issue 21): the request
 * body, checked at the edge and then passed through to Anthropic unchanged but for `model`.
 * Fields and block types are Anthropic's (docs.anthropic.com/en/api/messages, and the official
 * `@anthropic-ai/sdk`'s MessageCreateParams). Every top-level field is known and type-checked;
 * an unknown one is a 400 naming it, as Anthropic answers (`foo: Extra inputs are not
 * permitted`). Content blocks are checked by type, with their Anthropic-defined fields; nested
 * objects Anthropic defines (citations, callers, server-tool results) are passed through as
 * they are, Anthropic checks them. Refused although Anthropic defines them: what cannot work
 * through a pool of shared keys (`file` sources: the Files API is per account, and Keyrack does
 * not serve it; `container`: a container belongs to the key that made it).
 */

const cacheControl = z.strictObject({ type: z.literal('ephemeral'), ttl: z.enum(['5m', '1h']).optional() }).nullish();

const NO_FILES = 'Keyrack does not serve the Files API (a file belongs to one Anthropic account, Keyrack serves from a pool of them): send the content inline (base64, text or url)';
const fileSource = z.strictObject({ type: z.literal('file'), file_id: z.string() }).refine(() => false, NO_FILES);

const imageSource = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('base64'), media_type: z.enum(['image/jpeg', 'image/png', 'image/gif', 'image/webp']), data: z.string().min(1) }),
  z.strictObject({ type: z.literal('url'), url: z.string().min(1) }),
  fileSource,
]);

const textBlock = z.strictObject({ type: z.literal('text'), text: z.string(), cache_control: cacheControl, citations: z.array(z.looseObject({ type: z.string() })).nullish() });
const imageBlock = z.strictObject({
  type: z.literal('image'),
  source: imageSource,
  cache_control: cacheControl,
  transformations: z.strictObject({ oversized_image: z.enum(['downsize', 'error']).optional() }).nullish(),
});
const documentBlock = z.strictObject({
  type: z.literal('document'),
  source: z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('base64'), media_type: z.literal('application/pdf'), data: z.string().min(1) }),
    z.strictObject({ type: z.literal('text'), media_type: z.literal('text/plain'), data: z.string() }),
    z.strictObject({ type: z.literal('content'), content: z.union([z.string(), z.array(z.looseObject({ type: z.string() }))]) }),
    z.strictObject({ type: z.literal('url'), url: z.string().min(1) }),
    fileSource,
  ]),
  cache_control: cacheControl,
  citations: z.strictObject({ enabled: z.boolean().optional() }).nullish(),
  context: z.string().nullish(),
  title: z.string().nullish(),
});
const searchResultBlock = z.strictObject({
  type: z.literal('search_result'),
  content: z.array(textBlock),
  source: z.string(),
  title: z.string(),
  cache_control: cacheControl,
  citations: z.strictObject({ enabled: z.boolean().optional() }).optional(),
});
const thinkingBlock = z.strictObject({ type: z.literal('thinking'), thinking: z.string(), signature: z.string() });
const redactedThinkingBlock = z.strictObject({ type: z.literal('redacted_thinking'), data: z.string() });
const toolUseBlock = z.strictObject({
  type: z.literal('tool_use'),
  id: z.string().min(1),
  name: z.string().min(1),
  input: z.unknown(),
  cache_control: cacheControl,
  caller: z.looseObject({ type: z.string() }).optional(),
  toolset_name: z.string().nullish(),
});
/** What a tool result may hold besides a string (Anthropic's list; tool_reference and browser_state passed as they are). */
const toolResultContentBlock = z.discriminatedUnion('type', [
  textBlock,
  imageBlock,
  searchResultBlock,
  documentBlock,
  z.looseObject({ type: z.literal('tool_reference'), tool_name: z.string() }),
  z.looseObject({ type: z.literal('browser_state') }),
]);
const toolResultBlock = z.strictObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string().min(1),
  content: z.union([z.string(), z.array(toolResultContentBlock)]).optional(),
  is_error: z.boolean().optional(),
  cache_control: cacheControl,
  toolset_name: z.string().nullish(),
});
/** Blocks of Anthropic's server tools (web search, code execution, ...): Anthropic wrote them, Anthropic checks them. */
const serverBlock = <T extends string>(type: T) => z.looseObject({ type: z.literal(type) });

export const BLOCK_TYPES = [
  'text',
  'image',
  'document',
  'search_result',
  'thinking',
  'redacted_thinking',
  'tool_use',
  'tool_result',
  'server_tool_use',
  'web_search_tool_result',
  'web_fetch_tool_result',
  'code_execution_tool_result',
  'bash_code_execution_tool_result',
  'text_editor_code_execution_tool_result',
  'tool_search_tool_result',
  'container_upload',
] as const;

const contentBlock = z.discriminatedUnion(
  'type',
  [
    textBlock,
    imageBlock,
    documentBlock,
    searchResultBlock,
    thinkingBlock,
    redactedThinkingBlock,
    toolUseBlock,
    toolResultBlock,
    serverBlock('server_tool_use'),
    serverBlock('web_search_tool_result'),
    serverBlock('web_fetch_tool_result'),
    serverBlock('code_execution_tool_result'),
    serverBlock('bash_code_execution_tool_result'),
    serverBlock('text_editor_code_execution_tool_result'),
    serverBlock('tool_search_tool_result'),
    serverBlock('container_upload'),
  ],
  { error: `content block type is one of ${BLOCK_TYPES.join(', ')}` },
);
export type AnthropicWireBlock = z.infer<typeof contentBlock>;

const messageParam = z.strictObject({
  // 'system' is in the SDK's MessageParam (0.137) beside user and assistant.
  role: z.enum(['user', 'assistant', 'system']),
  content: z.union([z.string(), z.array(contentBlock)]),
});
export type AnthropicWireMessage = z.infer<typeof messageParam>;

/** A tool the client defines (`type` absent or `custom`), checked; Anthropic's own tools (`web_search_20250305`, `bash_20250124`, ...) by their versioned type. */
const customTool = z.strictObject({
  type: z.literal('custom').nullish(),
  name: z.string().min(1).max(128),
  description: z.string().optional(),
  input_schema: z.looseObject({ type: z.literal('object') }),
  cache_control: cacheControl,
  strict: z.boolean().optional(),
  defer_loading: z.boolean().optional(),
  eager_input_streaming: z.boolean().nullish(),
  allowed_callers: z.array(z.string()).optional(),
  input_examples: z.array(z.record(z.string(), z.unknown())).optional(),
});
const serverTool = z.looseObject({ type: z.string().regex(/^[a-z_]+_\d{8}$/, 'a server tool type is versioned, e.g. web_search_20250305'), name: z.string().min(1) });
const tool = z.union([customTool, serverTool]);

const toolChoice = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
    z.strictObject({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
    z.strictObject({ type: z.literal('tool'), name: z.string(), disable_parallel_tool_use: z.boolean().optional() }),
    z.strictObject({ type: z.literal('none') }),
  ],
  { error: 'tool_choice type is auto, any, tool or none' },
);

const thinkingDisplay = z.enum(['summarized', 'omitted']).nullish();
const thinking = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('enabled'), budget_tokens: z.number().int().min(1024), display: thinkingDisplay }),
    z.strictObject({ type: z.literal('disabled') }),
    z.strictObject({ type: z.literal('adaptive'), display: thinkingDisplay }),
    z.strictObject({ type: z.literal('between_tools') }),
  ],
  { error: 'thinking type is enabled, disabled, adaptive or between_tools' },
);

const NO_CONTAINER = 'Keyrack does not carry containers: a container belongs to the Anthropic key that made it, and each request may be served by another key of the pool';

/** The fields both create and count_tokens take. */
const commonFields = {
  model: z.string().min(1),
  messages: z.array(messageParam).min(1),
  system: z.union([z.string(), z.array(textBlock)]).optional(),
  tools: z.array(tool).optional(),
  tool_choice: toolChoice.optional(),
  thinking: thinking.optional(),
  output_config: z
    .strictObject({
      effort: z.enum(['low', 'medium', 'high', 'xhigh', 'max']).nullish(),
      format: z.strictObject({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()) }).nullish(),
    })
    .optional(),
  cache_control: cacheControl,
  speed: z.enum(['standard', 'fast']).nullish(),
};

export const anthropicCreateSchema = z.strictObject({
  ...commonFields,
  max_tokens: z.number().int().min(1),
  stream: z.boolean().optional(),
  stop_sequences: z.array(z.string()).optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  metadata: z.strictObject({ user_id: z.string().max(256).nullish() }).optional(),
  service_tier: z.enum(['auto', 'standard_only']).optional(),
  inference_geo: z.string().nullish(),
  diagnostics: z.strictObject({ previous_message_id: z.string().nullish() }).nullish(),
  container: z.unknown().refine((value) => value === null || value === undefined, NO_CONTAINER).optional(),
});
export type AnthropicCreateRequest = z.infer<typeof anthropicCreateSchema>;

export const anthropicCountTokensSchema = z.strictObject(commonFields);
export type AnthropicCountTokensRequest = z.infer<typeof anthropicCountTokensSchema>;

/**
 * Headers of Anthropic's API that select the account's workspace or a user profile: meaningless
 * (or worse, another team's) on Keyrack's pooled keys, so refused rather than dropped.
 */
export const REFUSED_HEADERS = ['anthropic-workspace-id', 'anthropic-user-profile-id'] as const;

/** `anthropic-version` and `anthropic-beta`, passed on as the client sent them once they look like Anthropic's. */
export const ANTHROPIC_VERSION_HEADER = /^\d{4}-\d{2}-\d{2}$/;
export const ANTHROPIC_BETA_HEADER = /^[a-z0-9-]+(\s*,\s*[a-z0-9-]+)*$/i;

/**
 * The first problem of a parse, as Anthropic words it: the field's dotted path, a colon, the
 * reason (`messages.0.content.1.type: ...`, `foo: Extra inputs are not permitted`). The path is
 * what the SDK's users read to find their mistake.
 */
export function refusalOfIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'invalid request';
  const at = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') return `${[...at, issue.keys[0] ?? ''].join('.')}: Extra inputs are not permitted`;
  const field = at.length > 0 ? at.join('.') : 'body';
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${field}: Field required`;
  return `${field}: ${issue.message}`;
}

/** Anthropic's error types by HTTP status (docs "Errors"). */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'billing_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'overloaded_error';

/** `{ "type": "error", "error": { "type", "message" }, "request_id" }`, as Anthropic answers every error. */
export function anthropicError(type: AnthropicErrorType, message: string, requestId: string): { type: 'error'; error: { type: AnthropicErrorType; message: string }; request_id: string } {
  return { type: 'error', error: { type, message }, request_id: requestId };
}

/**
 * Each gateway failure as Anthropic would have said it, so an Anthropic client reacts as it
 * does to Anthropic: the SDK retries 408, 409, 429 and 5xx (with `retry-after`), not the rest.
 * A used-up budget is a 402 billing_error (Anthropic's own answer to an empty balance, never
 * retried); budget held by answers still running is a 429 with the time to wait. No key left is
 * a 529 overloaded_error: nothing the client did, worth a retry later.
 */
export const ANTHROPIC_ERROR_OF: Record<GatewayErrorCode, { status: number; type: AnthropicErrorType }> = {
  rate_limited: { status: 429, type: 'rate_limit_error' },
  quota_exhausted: { status: 429, type: 'rate_limit_error' },
  no_keys: { status: 529, type: 'overloaded_error' },
  bad_request: { status: 400, type: 'invalid_request_error' },
  upstream_error: { status: 500, type: 'api_error' },
  stream_interrupted: { status: 500, type: 'api_error' },
  prompt_too_long: { status: 400, type: 'invalid_request_error' },
  budget_exceeded: { status: 402, type: 'billing_error' },
  shutting_down: { status: 529, type: 'overloaded_error' },
  not_found: { status: 404, type: 'not_found_error' },
  internal: { status: 500, type: 'api_error' },
  store_unavailable: { status: 529, type: 'overloaded_error' },
};

/** Anthropic's model object (GET /v1/models): the catalog's id is what clients send as `model`. */
export function anthropicModel(m: { id: string; displayName: string }): { type: 'model'; id: string; display_name: string; created_at: string } {
  // The catalog keeps no release date; the epoch says "unknown" in RFC 3339, as the field must be.
  return { type: 'model', id: m.id, display_name: m.displayName, created_at: '1970-01-01T00:00:00Z' };
}
