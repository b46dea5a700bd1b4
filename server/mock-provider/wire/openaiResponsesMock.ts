import { z } from 'zod';
import { textOf, type MockAnswerPlan, type MockChatInput, type MockResponsesEcho } from '../mockAnswer';
import type { MockErrorInfo, MockStreamRenderer } from '../mockDialect';

/**
 * OpenAI's Responses API (platform.openai.com/docs/api-reference/responses) as the mock speaks
 * it under `/openai/v1/responses` (issue 21): the request read as OpenAI reads it (unknown
 * parameters refused, a function_call_output must answer a function_call of the input), the
 * `response` object whole, and streamed as named SSE events (`event: response.created` ...
 * `response.output_text.delta` ... `response.completed`), each with its `sequence_number`,
 * `output_index`, `content_index` and `item_id`. An answer cut by `max_output_tokens` is
 * `status: 'incomplete'` and its stream ends in `response.incomplete`. Rate limits, errors and
 * faults are openaiMock's, as on the chat endpoint.
 */

const contentPartSchema = z.looseObject({ type: z.string(), text: z.string().optional() });
const messageItemSchema = z.looseObject({
  type: z.literal('message').optional(),
  role: z.enum(['user', 'assistant', 'system', 'developer']),
  content: z.union([z.string(), z.array(contentPartSchema)]),
});
const functionCallSchema = z.looseObject({ type: z.literal('function_call'), call_id: z.string().min(1), name: z.string().min(1), arguments: z.string() });
const functionOutputSchema = z.looseObject({ type: z.literal('function_call_output'), call_id: z.string().min(1), output: z.union([z.string(), z.array(z.unknown())]) });
const reasoningItemSchema = z.looseObject({ type: z.literal('reasoning') });
const itemSchema = z.union([messageItemSchema, functionCallSchema, functionOutputSchema, reasoningItemSchema]);

const functionToolSchema = z.looseObject({ type: z.literal('function'), name: z.string().min(1), parameters: z.record(z.string(), z.unknown()).nullish() });
const toolChoiceSchema = z.union([z.enum(['auto', 'none', 'required']), z.looseObject({ type: z.literal('function'), name: z.string() })]);
const formatSchema = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text') }),
  z.looseObject({ type: z.literal('json_object') }),
  z.looseObject({ type: z.literal('json_schema'), name: z.string(), schema: z.record(z.string(), z.unknown()) }),
]);

const requestSchema = z.object({
  model: z.string({ error: "Missing required parameter: 'model'." }).min(1, "Missing required parameter: 'model'."),
  input: z.union([z.string(), z.array(itemSchema)], { error: "Invalid type for 'input': expected a string or an array of input items." }),
  instructions: z.string().nullish(),
  max_output_tokens: z.number().int().min(16, "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16.").nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  tools: z.array(functionToolSchema).nullish(),
  tool_choice: toolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z.looseObject({ format: formatSchema.optional() }).nullish(),
  reasoning: z.looseObject({ effort: z.string().nullish() }).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_obfuscation: z.boolean().nullish() }).nullish(),
  store: z.boolean().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  truncation: z.enum(['auto', 'disabled']).nullish(),
  user: z.string().nullish(),
  include: z.array(z.string()).nullish(),
  previous_response_id: z.string().nullish(),
  top_logprobs: z.number().int().nullish(),
  prompt_cache_key: z.string().nullish(),
  safety_identifier: z.string().nullish(),
});

/** OpenAI's parameters the mock knows; anything else is "Unknown parameter", as OpenAI answers. */
const KNOWN = new Set([...Object.keys(requestSchema.shape), 'background', 'conversation', 'prompt', 'service_tier', 'prompt_cache_retention', 'context_management']);

/** The request as the mock's model needs it, or OpenAI's words for what is wrong with it. */
export function parseResponsesRequest(body: unknown): MockChatInput | { error: string } {
  if (typeof body === 'object' && body !== null) {
    for (const key of Object.keys(body)) if (!KNOWN.has(key)) return { error: `Unknown parameter: '${key}'.` };
  }
  const parsed = requestSchema.safeParse(body);
  if (!parsed.success) return { error: parsed.error.issues[0]?.message ?? 'Invalid request' };
  const r = parsed.data;
  // Stateless here: the mock keeps no responses, as a request with `store: false` cannot use any.
  if (r.previous_response_id) return { error: `Previous response with id '${r.previous_response_id}' not found.` };
  const items = typeof r.input === 'string' ? [{ role: 'user' as const, content: r.input }] : r.input;
  let promptChars = r.instructions?.length ?? 0;
  let lastUserText = '';
  let imageCount = 0;
  const calls = new Set<string>();
  for (const item of items) {
    if ('role' in item) {
      const text = textOf(item.content);
      promptChars += text.length;
      if (item.role === 'user') {
        lastUserText = text;
        if (Array.isArray(item.content)) imageCount += item.content.filter((part) => part.type === 'input_image').length;
      }
    } else if (item.type === 'function_call') {
      calls.add(item.call_id);
      promptChars += item.name.length + item.arguments.length;
    } else if (item.type === 'function_call_output') {
      // OpenAI's answer to an output whose call is not in the (stateless) input.
      if (!calls.has(item.call_id)) return { error: `No tool call found for function call output with call_id ${item.call_id}.` };
      promptChars += typeof item.output === 'string' ? item.output.length : JSON.stringify(item.output).length;
    }
  }
  const tools = r.tools ?? [];
  const choice = r.tool_choice;
  if (typeof choice === 'object' && choice && !tools.some((t) => t.name === choice.name)) {
    return { error: `Tool choice '${choice.name}' not found in 'tools' parameter.` };
  }
  const last = items[items.length - 1];
  const input: MockChatInput = {
    model: r.model,
    stream: r.stream === true,
    includeUsage: false,
    maxTokens: r.max_output_tokens ?? undefined,
    lastUserText,
    promptChars,
    lastIsToolResult: last !== undefined && 'type' in last && last.type === 'function_call_output',
    responses: echoOf(r),
  };
  if (tools.length > 0) input.tools = tools.map((t) => ({ name: t.name, ...(t.parameters ? { parameters: t.parameters } : {}) }));
  if (choice) input.toolChoice = typeof choice === 'string' ? choice : { name: choice.name };
  if (r.parallel_tool_calls !== undefined && r.parallel_tool_calls !== null) input.parallelToolCalls = r.parallel_tool_calls;
  const format = r.text?.format;
  if (format?.type === 'json_object') input.responseFormat = { type: 'json_object' };
  if (format?.type === 'json_schema') input.responseFormat = { type: 'json_schema', schema: format.schema };
  if (imageCount > 0) input.imageCount = imageCount;
  if (r.reasoning?.effort && r.reasoning.effort !== 'none') input.thinking = true;
  return input;
}

/** The request's settings as the response object repeats them, with OpenAI's defaults. */
function echoOf(r: z.infer<typeof requestSchema>): MockResponsesEcho {
  return {
    instructions: r.instructions ?? null,
    max_output_tokens: r.max_output_tokens ?? null,
    parallel_tool_calls: r.parallel_tool_calls ?? true,
    previous_response_id: null,
    reasoning: { effort: r.reasoning?.effort ?? null, summary: null },
    // OpenAI stores responses unless told not to: the gateway must say `store: false`.
    store: r.store ?? true,
    temperature: r.temperature ?? 1,
    text: { format: r.text?.format ?? { type: 'text' } },
    tool_choice: r.tool_choice ?? 'auto',
    tools: (r.tools ?? []).map((t) => ({ description: null, strict: true, ...t })),
    top_p: r.top_p ?? 1,
    truncation: r.truncation ?? 'disabled',
    user: r.user ?? null,
    metadata: r.metadata ?? {},
  };
}

const responseId = (plan: MockAnswerPlan) => `resp_mock${plan.serial}`;
const messageId = (plan: MockAnswerPlan) => `msg_mock${plan.serial}`;
const reasoningId = (plan: MockAnswerPlan) => `rs_mock${plan.serial}`;
const callItemId = (plan: MockAnswerPlan, index: number) => `fc_mock${plan.serial}_${index}`;

function usageOf(plan: MockAnswerPlan) {
  const reasoningTokens = plan.reasoning !== null ? Math.ceil(plan.reasoning.length / 4) : 0;
  return {
    input_tokens: plan.promptTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: plan.completionTokens,
    output_tokens_details: { reasoning_tokens: reasoningTokens },
    total_tokens: plan.promptTokens + plan.completionTokens,
  };
}

type Status = 'in_progress' | 'completed' | 'incomplete';
const finalStatus = (plan: MockAnswerPlan): Status => (plan.truncated ? 'incomplete' : 'completed');

/** The `response` object: at the start of a stream (in progress, no output), or final. */
function responseObject(plan: MockAnswerPlan, status: Status, output: unknown[]) {
  const done = status !== 'in_progress';
  return {
    id: responseId(plan),
    object: 'response',
    created_at: plan.created,
    status,
    background: false,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    model: plan.model,
    output,
    service_tier: 'default',
    ...plan.responses,
    usage: done ? usageOf(plan) : null,
  };
}

const reasoningItem = (plan: MockAnswerPlan) => ({ id: reasoningId(plan), type: 'reasoning', summary: [] });
const textPart = (text: string) => ({ type: 'output_text', annotations: [], logprobs: [], text });
const messageItem = (plan: MockAnswerPlan, status: Status) => ({
  id: messageId(plan),
  type: 'message',
  status,
  content: status === 'in_progress' ? [] : [textPart(plan.text)],
  role: 'assistant',
});
const callItem = (plan: MockAnswerPlan, index: number, status: Status) => {
  const call = plan.toolCalls[index]!;
  return { id: callItemId(plan, index), type: 'function_call', status, arguments: status === 'in_progress' ? '' : call.arguments, call_id: call.id, name: call.name };
};

/** The output items of a finished answer: a reasoning item when it thought, then its text or its calls. */
function outputOf(plan: MockAnswerPlan): unknown[] {
  const output: unknown[] = [];
  if (plan.reasoning !== null) output.push(reasoningItem(plan));
  if (plan.toolCalls.length > 0) plan.toolCalls.forEach((_, i) => output.push(callItem(plan, i, 'completed')));
  else output.push(messageItem(plan, finalStatus(plan)));
  return output;
}

export function responsesReply(plan: MockAnswerPlan): string {
  return JSON.stringify(responseObject(plan, finalStatus(plan), outputOf(plan)));
}

/** Argument text of a streamed call in fragments of about 8 characters. */
function argumentPieces(text: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += 8) pieces.push(text.slice(i, i + 8));
  return pieces;
}

/** The streamed answer: named events, numbered in order from 0 (`sequence_number`). */
export function responsesStream(plan: MockAnswerPlan, errorBody: (info: MockErrorInfo) => { message: string; code: string | null }): MockStreamRenderer {
  let seq = 0;
  const event = (type: string, fields: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...fields })}\n\n`;
  const hasText = plan.toolCalls.length === 0;
  // Where the message item sits among the output items (after a reasoning item, if any).
  const messageIndex = plan.reasoning !== null ? 1 : 0;
  const itemId = messageId(plan);
  return {
    contentType: 'text/event-stream; charset=utf-8',
    head() {
      let out = event('response.created', { response: responseObject(plan, 'in_progress', []) });
      out += event('response.in_progress', { response: responseObject(plan, 'in_progress', []) });
      if (plan.reasoning !== null) {
        out += event('response.output_item.added', { output_index: 0, item: reasoningItem(plan) });
        out += event('response.output_item.done', { output_index: 0, item: reasoningItem(plan) });
      }
      if (hasText) {
        out += event('response.output_item.added', { output_index: messageIndex, item: messageItem(plan, 'in_progress') });
        out += event('response.content_part.added', { item_id: itemId, output_index: messageIndex, content_index: 0, part: textPart('') });
      }
      return out;
    },
    delta: (text) => event('response.output_text.delta', { item_id: itemId, output_index: messageIndex, content_index: 0, delta: text, logprobs: [] }),
    tail() {
      let out = '';
      if (hasText) {
        out += event('response.output_text.done', { item_id: itemId, output_index: messageIndex, content_index: 0, text: plan.text, logprobs: [] });
        out += event('response.content_part.done', { item_id: itemId, output_index: messageIndex, content_index: 0, part: textPart(plan.text) });
        out += event('response.output_item.done', { output_index: messageIndex, item: messageItem(plan, finalStatus(plan)) });
      }
      plan.toolCalls.forEach((call, i) => {
        const index = messageIndex + i;
        const id = callItemId(plan, i);
        out += event('response.output_item.added', { output_index: index, item: callItem(plan, i, 'in_progress') });
        for (const piece of argumentPieces(call.arguments)) out += event('response.function_call_arguments.delta', { item_id: id, output_index: index, delta: piece });
        out += event('response.function_call_arguments.done', { item_id: id, output_index: index, name: call.name, arguments: call.arguments });
        out += event('response.output_item.done', { output_index: index, item: callItem(plan, i, 'completed') });
      });
      const status = finalStatus(plan);
      out += event(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: responseObject(plan, status, outputOf(plan)) });
      return out;
    },
    malformed: () => `event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"unterminated\n\n`,
    // A failure mid-answer: OpenAI's `error` event (code, message, param).
    error: (info) => {
      const { message, code } = errorBody(info);
      return event('error', { code: code ?? 'server_error', message, param: null });
    },
  };
}
