import { z } from 'zod';
import { providerIdSchema } from './providers';

/** Upper bounds that keep one request from exhausting memory before the prompt limits apply. */
export const MAX_MESSAGES = 500;
export const MAX_MESSAGE_CHARS = 200_000;

/** A data URL's or a remote image's URL text: data URLs carry the bytes (base64), so they get room. */
export const MAX_IMAGE_URL_CHARS = 2_048;
export const MAX_IMAGE_DATA_URL_CHARS = 14_000_000; // ~10 MiB of image bytes in base64
export const MAX_TOOLS = 128;
export const MAX_TOOL_CALLS = 128;
export const MAX_STOP_SEQUENCES = 4;
/** A tool's JSON-schema parameters (or a json_schema response format), serialized. */
export const MAX_JSON_SCHEMA_CHARS = 100_000;
export const IMAGE_MEDIA_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'] as const;
export type ImageMediaType = (typeof IMAGE_MEDIA_TYPES)[number];

/** `system` and `developer` (OpenAI's newer name for it) are both instructions; kept apart so /v1 passes `developer` through. */
export const chatRoleSchema = z.enum(['system', 'developer', 'user', 'assistant', 'tool']);
export type ChatRole = z.infer<typeof chatRoleSchema>;

export const textPartSchema = z.object({ type: z.literal('text'), text: z.string().max(MAX_MESSAGE_CHARS) });
export type TextPart = z.infer<typeof textPartSchema>;

const DATA_URL = /^data:(image\/(?:png|jpeg|gif|webp));base64,[A-Za-z0-9+/]+={0,2}$/;

/**
 * An image by URL: `https://...` (the provider fetches it; Gemini gets it as fileData) or a
 * `data:image/<png|jpeg|gif|webp>;base64,...` URL carrying the bytes.
 */
export const imageUrlSchema = z
  .string()
  .max(MAX_IMAGE_DATA_URL_CHARS, `an image data URL is at most ${MAX_IMAGE_DATA_URL_CHARS} characters`)
  .refine(
    (url) => DATA_URL.test(url) || (/^https?:\/\/[^\s]+$/.test(url) && url.length <= MAX_IMAGE_URL_CHARS),
    `an image is an http(s) URL of at most ${MAX_IMAGE_URL_CHARS} characters or a data:image/(png|jpeg|gif|webp);base64 URL`,
  );

export const imagePartSchema = z.object({
  type: z.literal('image'),
  url: imageUrlSchema,
  /** OpenAI's `detail`; other providers have no such knob (ignored there: it only trades cost for resolution). */
  detail: z.enum(['auto', 'low', 'high']).optional(),
});
export type ImagePart = z.infer<typeof imagePartSchema>;

export const userContentPartSchema = z.discriminatedUnion('type', [textPartSchema, imagePartSchema]);
export type UserContentPart = z.infer<typeof userContentPartSchema>;

/** Function names as OpenAI, Anthropic and Gemini all accept them. */
export const toolNameSchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/, 'tool names are 1-64 letters, digits, _ or - (not starting with a digit or -)');
export const toolCallIdSchema = z.string().min(1).max(200).regex(/^[A-Za-z0-9_.:-]+$/, 'tool call ids use letters, digits and _ . : -');

/** A JSON object (a JSON schema, here): checked for size, kept as the client wrote it. */
export const jsonObjectSchema = z
  .record(z.string(), z.unknown())
  .refine((value) => JSON.stringify(value).length <= MAX_JSON_SCHEMA_CHARS, `a JSON schema is at most ${MAX_JSON_SCHEMA_CHARS} characters`);
export type JsonObject = Record<string, unknown>;

/** A call the model made: `arguments` is JSON text, as the model wrote it (it may be invalid JSON). */
export const toolCallSchema = z.object({
  id: toolCallIdSchema,
  name: toolNameSchema,
  arguments: z.string().max(MAX_MESSAGE_CHARS),
});
export type ToolCall = z.infer<typeof toolCallSchema>;

const instructionContent = z.union([z.string().max(MAX_MESSAGE_CHARS), z.array(textPartSchema).min(1).max(MAX_MESSAGES)]);

export const chatMessageSchema = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content: instructionContent }),
  z.object({ role: z.literal('developer'), content: instructionContent }),
  z.object({ role: z.literal('user'), content: z.union([z.string().max(MAX_MESSAGE_CHARS), z.array(userContentPartSchema).min(1).max(MAX_MESSAGES)]) }),
  z
    .object({
      role: z.literal('assistant'),
      /** Text of the answer; '' (or absent) when the turn was only tool calls. */
      content: z.string().max(MAX_MESSAGE_CHARS).default(''),
      toolCalls: z.array(toolCallSchema).min(1).max(MAX_TOOL_CALLS).optional(),
    }),
  z.object({
    role: z.literal('tool'),
    /** The id of the assistant's tool call this answers. */
    toolCallId: toolCallIdSchema,
    content: instructionContent,
  }),
]);
export type ChatMessage = z.infer<typeof chatMessageSchema>;
export type ChatMessageInput = z.input<typeof chatMessageSchema>;

/** A message's text: a string, or its text parts joined (images are not text). */
export function messageText(message: ChatMessage): string {
  const { content } = message;
  if (typeof content === 'string') return content;
  let text = '';
  for (const part of content) if (part.type === 'text') text += part.text;
  return text;
}

export const toolSchema = z.object({
  type: z.literal('function').default('function'),
  name: toolNameSchema,
  description: z.string().max(10_000).optional(),
  /** JSON schema of the arguments; absent = no arguments. */
  parameters: jsonObjectSchema.optional(),
  /** OpenAI's strict mode: arguments always match the schema. */
  strict: z.boolean().optional(),
});
export type Tool = z.infer<typeof toolSchema>;

export const toolChoiceSchema = z.union([
  z.enum(['auto', 'none', 'required']),
  z.object({ type: z.literal('function'), name: toolNameSchema }),
]);
export type ToolChoice = z.infer<typeof toolChoiceSchema>;

export const responseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a response format name is 1-64 letters, digits, _ or -'),
    description: z.string().max(10_000).optional(),
    schema: jsonObjectSchema,
    strict: z.boolean().optional(),
  }),
]);
export type ResponseFormat = z.infer<typeof responseFormatSchema>;

export const REASONING_EFFORTS = ['none', 'minimal', 'low', 'medium', 'high'] as const;
export const reasoningEffortSchema = z.enum(REASONING_EFFORTS);
export type ReasoningEffort = z.infer<typeof reasoningEffortSchema>;

/**
 * A model is named plainly (`gpt-4o`, resolved through the model list)
 * or as `provider/model` (`anthropic/claude-sonnet-4`).
 */
export const modelNameSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/, 'model names use letters, digits and . _ : / @ -');

/** The longest any request may wait for a key (issue 22), ms: ten minutes. */
export const MAX_WAIT_MS = 600_000;
/** How long a request may wait for a key when every key is busy (chat, embeddings), ms. */
export const maxWaitMsSchema = z.number().int().min(0).max(MAX_WAIT_MS);

/**
 * One chat request, as every surface (tRPC, /v1, the SDK) carries it. Each field is either
 * carried to the provider or refused (400 naming it) where the model or provider cannot honour
 * it: never dropped (issue 20).
 */
export const chatRequestSchema = z
  .object({
    model: modelNameSchema,
    messages: z.array(chatMessageSchema).min(1).max(MAX_MESSAGES),
    maxTokens: z.number().int().positive().max(1_000_000).optional(),
    temperature: z.number().min(0).max(2).optional(),
    topP: z.number().min(0).max(1).optional(),
    stop: z.array(z.string().min(1).max(1_000)).min(1).max(MAX_STOP_SEQUENCES).optional(),
    seed: z.number().int().min(-(2 ** 53) + 1).max(2 ** 53 - 1).optional(),
    presencePenalty: z.number().min(-2).max(2).optional(),
    frequencyPenalty: z.number().min(-2).max(2).optional(),
    tools: z.array(toolSchema).min(1).max(MAX_TOOLS).optional(),
    toolChoice: toolChoiceSchema.optional(),
    parallelToolCalls: z.boolean().optional(),
    responseFormat: responseFormatSchema.optional(),
    reasoningEffort: reasoningEffortSchema.optional(),
    /**
     * The gateway's, not the model's (issue 22): how long this request may wait for a key when
     * every key is busy, ms, capped by the pool's `<P>_QUEUE_MAX_WAIT_MS`; 0 = fail at once.
     * On /v1 it is the `x-keyrack-max-wait-ms` header.
     */
    maxWaitMs: maxWaitMsSchema.optional(),
  })
  .superRefine((req, ctx) => {
    const names = new Set<string>();
    for (const [i, tool] of (req.tools ?? []).entries()) {
      if (names.has(tool.name)) ctx.addIssue({ code: 'custom', path: ['tools', i, 'name'], message: `two tools are named ${tool.name}` });
      names.add(tool.name);
    }
    if (req.toolChoice !== undefined && req.toolChoice !== 'none' && names.size === 0) {
      ctx.addIssue({ code: 'custom', path: ['toolChoice'], message: 'toolChoice needs tools' });
    }
    if (typeof req.toolChoice === 'object' && !names.has(req.toolChoice.name)) {
      ctx.addIssue({ code: 'custom', path: ['toolChoice', 'name'], message: 'toolChoice names a function that is not in tools' });
    }
    if (req.parallelToolCalls !== undefined && names.size === 0) {
      ctx.addIssue({ code: 'custom', path: ['parallelToolCalls'], message: 'parallelToolCalls needs tools' });
    }
    // A tool result must answer a call the conversation made.
    const calls = new Set<string>();
    for (const [i, message] of req.messages.entries()) {
      if (message.role === 'assistant') for (const call of message.toolCalls ?? []) calls.add(call.id);
      if (message.role === 'tool' && !calls.has(message.toolCallId)) {
        ctx.addIssue({ code: 'custom', path: ['messages', i, 'toolCallId'], message: 'a tool message answers a tool call of an earlier assistant message' });
      }
    }
  });
export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type ChatRequestInput = z.input<typeof chatRequestSchema>;

/** What a request asks of its model, for the catalog's capability check (one name per capability). */
export const MODEL_CAPABILITIES = ['tools', 'vision', 'json_schema', 'reasoning'] as const;
export type ModelCapability = (typeof MODEL_CAPABILITIES)[number];

/** The capabilities a request needs, each with the request field that needs it (for the 400's message). */
export function requiredCapabilities(req: ChatRequest): { capability: ModelCapability; field: string }[] {
  const needs: { capability: ModelCapability; field: string }[] = [];
  if (req.tools || req.messages.some((m) => m.role === 'tool' || (m.role === 'assistant' && m.toolCalls))) needs.push({ capability: 'tools', field: req.tools ? 'tools' : 'messages' });
  const imageAt = req.messages.findIndex((m) => m.role === 'user' && typeof m.content !== 'string' && m.content.some((p) => p.type === 'image'));
  if (imageAt >= 0) needs.push({ capability: 'vision', field: `messages[${imageAt}].content` });
  if (req.responseFormat && req.responseFormat.type !== 'text') needs.push({ capability: 'json_schema', field: 'responseFormat' });
  if (req.reasoningEffort !== undefined && req.reasoningEffort !== 'none') needs.push({ capability: 'reasoning', field: 'reasoningEffort' });
  return needs;
}

export const finishReasonSchema = z.enum(['stop', 'length', 'content_filter', 'tool_calls', 'error', 'aborted', 'other']);
export type FinishReason = z.infer<typeof finishReasonSchema>;

/** Token counts as the provider reported them, normalized. */
export const tokenUsageSchema = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  /** Input tokens served from the provider's prompt cache (billed at a discount by most providers). */
  cachedInputTokens: z.number().int().nonnegative().default(0),
  /** Reasoning tokens, already included in outputTokens (billed as output). */
  reasoningTokens: z.number().int().nonnegative().default(0),
});
export type TokenUsage = z.infer<typeof tokenUsageSchema>;

/**
 * Why a request failed, as the client needs to act on it. Upstream details stay in the logs;
 * these codes are what the UI and the retry logic read.
 */
export const gatewayErrorCodeSchema = z.enum([
  'rate_limited', // every key busy: retry after retryAfterMs
  'quota_exhausted', // every key out of money or daily quota
  'no_keys', // no usable key for the provider (all rejected or disabled)
  'bad_request', // the caller's fault; never retried
  'upstream_error', // provider failed (5xx, timeout, network) after all attempts
  'stream_interrupted', // the answer broke after text was already sent
  'prompt_too_long',
  'budget_exceeded',
  'shutting_down',
  'not_found',
  'internal',
  'store_unavailable', // the shared store (Redis) is not answering: retry after retryAfterMs; not the provider's fault
]);
export type GatewayErrorCode = z.infer<typeof gatewayErrorCodeSchema>;

export const costSchema = z.object({
  /** Currency: US dollars. Includes the configured markup. */
  estimatedUsd: z.number().nonnegative(),
  actualUsd: z.number().nonnegative().optional(),
});

/** The one normalized stream every provider's answer is turned into. */
export const streamEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('start'),
    provider: providerIdSchema,
    model: z.string(),
    /** Fingerprint of the key that serves the request (never the key itself). */
    keyFingerprint: z.string(),
  }),
  z.object({ type: z.literal('warning'), code: z.literal('prompt_over_soft_limit'), message: z.string(), promptTokens: z.number() }),
  z.object({ type: z.literal('delta'), text: z.string() }),
  /** Thinking text (Anthropic thinking, Gemini thought summaries, OpenAI-compatible reasoning_content), shown apart from the answer. */
  z.object({ type: z.literal('reasoning'), text: z.string() }),
  /**
   * A fragment of a tool call, by index within the answer (as OpenAI streams them): the first
   * fragment of an index carries `id` and `name`, later ones only argument text to append.
   */
  z.object({
    type: z.literal('tool_call_delta'),
    index: z.number().int().nonnegative().max(MAX_TOOL_CALLS),
    id: z.string().optional(),
    name: z.string().optional(),
    argumentsDelta: z.string(),
  }),
  z.object({ type: z.literal('usage'), usage: tokenUsageSchema, cost: costSchema.optional() }),
  z.object({ type: z.literal('done'), finishReason: finishReasonSchema }),
  z.object({
    type: z.literal('error'),
    code: gatewayErrorCodeSchema,
    message: z.string(),
    retryAfterMs: z.number().int().nonnegative().optional(),
  }),
]);
export type StreamEvent = z.infer<typeof streamEventSchema>;
export type StreamEventType = StreamEvent['type'];
