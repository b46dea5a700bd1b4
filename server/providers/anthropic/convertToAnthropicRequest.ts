import { messageText, type ChatMessage, type ReasoningEffort } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { toolArgumentsObject } from '../request/toolArguments';
import { refuseUnsupported, type CarriedField } from '../request/refuseUnsupported';
import type { UpstreamRequest } from '../types';
import type {
  AnthropicContentBlock,
  AnthropicImageSource,
  AnthropicMessageParam,
  AnthropicMessagesRequestBody,
  AnthropicThinking,
  AnthropicToolChoice,
} from './anthropicMessagesApi';

/** Anthropic requires `max_tokens`; this is what is asked when the caller sets none (plus the thinking budget, if any). */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/**
 * `json_object` has no native Anthropic form (structured outputs want a closed schema), so it is
 * a forced tool with an open object schema; the adapter turns that tool's input back into the
 * answer's text (see AnthropicAdapter).
 */
export const JSON_ANSWER_TOOL = 'json_answer';

/**
 * Manual extended thinking's budget per effort (`thinking: {type: 'enabled', budget_tokens}`,
 * at least 1024 and below max_tokens). Adaptive models get the effort itself instead.
 */
export const THINKING_BUDGET_TOKENS: Record<Exclude<ReasoningEffort, 'none'>, number> = { minimal: 1024, low: 2048, medium: 8192, high: 16384 };

/**
 * Models that only know manual thinking (budget_tokens): Claude 3.x and the Claude 4 family up to
 * 4.5 (`claude-sonnet-4-20250514`, `claude-opus-4-1`, `claude-haiku-4-5-20251001`). Claude 4.6
 * deprecates it and Opus 4.7 and later refuse it (400), wanting `thinking: {type: 'adaptive'}` with
 * `output_config.effort`: so every other model, future ones included, gets the adaptive form.
 */
const MANUAL_THINKING_MODEL = /^claude-(?:3[-.]|(?:opus|sonnet|haiku)-4(?:-[0-5])?(?:-\d{8})?$)/;

/**
 * Everything but seed and the penalties, which Anthropic has no parameter for (refused, 400
 * naming the field). System and developer messages go into the top-level `system` field;
 * consecutive turns of one role are joined (the API wants user and assistant to alternate), tool
 * results become `tool_result` blocks of a user turn (first in it, as Anthropic requires), and the
 * conversation must open with a user turn.
 */
const CARRIED: ReadonlySet<CarriedField> = new Set([
  'maxTokens',
  'temperature',
  'topP',
  'stop',
  'tools',
  'toolChoice',
  'parallelToolCalls',
  'responseFormat',
  'reasoningEffort',
  'images',
  'toolMessages',
]);

function refuse(param: string, message: string): never {
  throw new ProviderError({ kind: 'bad_request', status: 400, message: `anthropic: ${message}`, param });
}

export function convertToAnthropicRequest(req: UpstreamRequest): AnthropicMessagesRequestBody {
  refuseUnsupported(req, 'anthropic', CARRIED);
  const isInstruction = (role: string) => role === 'system' || role === 'developer';
  const system = req.messages.filter((m) => isInstruction(m.role)).map(messageText);
  const messages: AnthropicMessageParam[] = [];
  let hasToolResults = false;
  for (const [i, m] of req.messages.entries()) {
    if (isInstruction(m.role)) continue;
    if (m.role === 'tool') hasToolResults = true;
    appendTurn(messages, m.role === 'assistant' ? 'assistant' : 'user', contentOf(m, i));
  }
  if (hasToolResults) for (const m of messages) if (m.role === 'user' && typeof m.content !== 'string') m.content = toolResultsFirst(m.content);
  if (messages[0]?.role !== 'user') messages.unshift({ role: 'user', content: '(continue)' });

  const thinking = thinkingOf(req);
  const body: AnthropicMessagesRequestBody = {
    model: req.model,
    max_tokens: req.maxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS + (thinking?.budget ?? 0),
    messages,
    stream: req.delivery !== 'whole',
  };
  if (system.length > 0) body.system = system.join('\n\n');
  // Anthropic's temperature range is 0..1; ours (OpenAI's) is 0..2.
  if (req.temperature !== undefined) body.temperature = Math.min(1, req.temperature);
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.stop) body.stop_sequences = req.stop;
  addTools(req, body);
  addResponseFormat(req, body);
  if (thinking) addThinking(req, body, thinking);
  return body;
}

function appendTurn(messages: AnthropicMessageParam[], role: 'user' | 'assistant', content: string | AnthropicContentBlock[]): void {
  const last = messages[messages.length - 1];
  if (!last || last.role !== role) {
    messages.push({ role, content });
    return;
  }
  if (typeof last.content === 'string' && typeof content === 'string') {
    last.content += '\n\n' + content;
    return;
  }
  last.content = [...asBlocks(last.content), ...asBlocks(content)];
}

/** Anthropic refuses empty text blocks, so an empty string adds none. */
function asBlocks(content: string | AnthropicContentBlock[]): AnthropicContentBlock[] {
  if (typeof content !== 'string') return content;
  return content ? [{ type: 'text', text: content }] : [];
}

/** "Messages following tool_use blocks must begin with a matching number of tool_result blocks." */
function toolResultsFirst(blocks: AnthropicContentBlock[]): AnthropicContentBlock[] {
  return [...blocks.filter((b) => b.type === 'tool_result'), ...blocks.filter((b) => b.type !== 'tool_result')];
}

/** One message's content: a string when it is plain text (the body plain chat has always sent), blocks otherwise. */
function contentOf(m: ChatMessage, at: number): string | AnthropicContentBlock[] {
  switch (m.role) {
    case 'tool':
      return [{ type: 'tool_result', tool_use_id: m.toolCallId, content: messageText(m) }];
    case 'assistant': {
      if (!m.toolCalls) return m.content;
      const blocks = asBlocks(m.content);
      for (const [j, call] of m.toolCalls.entries()) {
        blocks.push({ type: 'tool_use', id: call.id, name: call.name, input: toolInput(call.arguments, `messages[${at}].toolCalls[${j}].arguments`) });
      }
      return blocks;
    }
    case 'user': {
      if (typeof m.content === 'string') return m.content;
      const blocks: AnthropicContentBlock[] = [];
      for (const part of m.content) {
        if (part.type === 'text') blocks.push(...asBlocks(part.text));
        // `detail` has no Anthropic counterpart: it only trades cost for resolution.
        else blocks.push({ type: 'image', source: imageSource(part.url) });
      }
      return blocks;
    }
    default:
      return messageText(m);
  }
}

/** A tool call's JSON-text arguments as the object Anthropic's `tool_use.input` is. */
function toolInput(args: string, param: string): Record<string, unknown> {
  const parsed = toolArgumentsObject(args);
  if (!parsed.ok) refuse(param, parsed.problem === 'not_json' ? "a tool call's arguments must be JSON (Anthropic takes them as an object)" : "a tool call's arguments must be a JSON object");
  return parsed.value;
}

const DATA_URL = /^data:(image\/(?:png|jpeg|gif|webp));base64,(.*)$/s;

/** shared/chat.ts has checked the URL: a data:image/...;base64 URL or an http(s) one. */
function imageSource(url: string): AnthropicImageSource {
  const data = DATA_URL.exec(url);
  if (data) return { type: 'base64', media_type: data[1] as 'image/png', data: data[2] as string };
  return { type: 'url', url };
}

function addTools(req: UpstreamRequest, body: AnthropicMessagesRequestBody): void {
  if (!req.tools) return; // shared/chat.ts allows toolChoice alone only as 'none': nothing to call, nothing to send.
  body.tools = req.tools.map((tool) => ({
    name: tool.name,
    ...(tool.description !== undefined ? { description: tool.description } : {}),
    // Anthropic requires an object schema; no parameters is a call without arguments.
    input_schema: tool.parameters && Object.keys(tool.parameters).length > 0 ? tool.parameters : { type: 'object', properties: {} },
    ...(tool.strict !== undefined ? { strict: tool.strict } : {}),
  }));
  const choice = req.toolChoice ?? 'auto';
  let toolChoice: AnthropicToolChoice;
  if (choice === 'none') toolChoice = { type: 'none' };
  else if (choice === 'auto') toolChoice = { type: 'auto' };
  else if (choice === 'required') toolChoice = { type: 'any' };
  else toolChoice = { type: 'tool', name: choice.name };
  // parallelToolCalls true is Anthropic's default; `none` has no such flag (no calls at all).
  if (req.parallelToolCalls === false && toolChoice.type !== 'none') toolChoice.disable_parallel_tool_use = true;
  if (req.toolChoice !== undefined || toolChoice.type !== 'auto' || toolChoice.disable_parallel_tool_use) body.tool_choice = toolChoice;
}

function addResponseFormat(req: UpstreamRequest, body: AnthropicMessagesRequestBody): void {
  const format = req.responseFormat;
  if (!format || format.type === 'text') return;
  if (format.type === 'json_schema') {
    // Structured outputs (GA on Claude 4.5 and later, no beta header): the answer is the JSON text.
    // Anthropic's format has no name or description and is always strict.
    body.output_config = { ...body.output_config, format: { type: 'json_schema', schema: format.schema } };
    return;
  }
  if (req.tools) refuse('responseFormat', 'json_object cannot be combined with tools (it is carried as a forced tool); use json_schema');
  if (req.reasoningEffort !== undefined && req.reasoningEffort !== 'none') {
    refuse('responseFormat', 'json_object cannot be combined with reasoningEffort (it is carried as a forced tool, which thinking does not allow); use json_schema');
  }
  body.tools = [{ name: JSON_ANSWER_TOOL, description: 'Give the answer as one JSON object.', input_schema: { type: 'object' } }];
  body.tool_choice = { type: 'tool', name: JSON_ANSWER_TOOL };
}

interface ThinkingPlan {
  thinking: AnthropicThinking;
  /** Tokens set aside for thinking (manual budget, or the same sizing for adaptive's max_tokens). */
  budget: number;
  effort: Exclude<ReasoningEffort, 'none'>;
}

/** none asks for no thinking (none is sent: a model's default is not to think). */
function thinkingOf(req: UpstreamRequest): ThinkingPlan | undefined {
  const effort = req.reasoningEffort;
  if (effort === undefined || effort === 'none') return undefined;
  const budget = THINKING_BUDGET_TOKENS[effort];
  return { thinking: MANUAL_THINKING_MODEL.test(req.model) ? { type: 'enabled', budget_tokens: budget } : { type: 'adaptive' }, budget, effort };
}

/**
 * Thinking's own rules (docs "Extended thinking"), checked here so the caller gets a 400 naming
 * its field before any key is spent: no forced tool use, temperature only 1, top_p 0.95..1,
 * budget_tokens below max_tokens. And a tool loop cannot be continued with thinking: Anthropic
 * wants the previous turn's thinking block back with its signature, which Keyrack's messages do
 * not carry (the reasoning events give its text, not the signature).
 */
function addThinking(req: UpstreamRequest, body: AnthropicMessagesRequestBody, plan: ThinkingPlan): void {
  if (req.toolChoice === 'required' || typeof req.toolChoice === 'object') refuse('toolChoice', 'thinking (reasoningEffort) cannot be combined with a forced tool choice; use auto');
  if (body.temperature !== undefined && body.temperature !== 1) refuse('temperature', 'thinking (reasoningEffort) allows temperature 1 only');
  if (req.topP !== undefined && req.topP < 0.95) refuse('topP', 'thinking (reasoningEffort) allows topP 0.95 to 1 only');
  const lastAssistant = req.messages.findLast((m) => m.role === 'assistant');
  if (lastAssistant?.role === 'assistant' && lastAssistant.toolCalls) {
    refuse('reasoningEffort', 'cannot continue a tool call with thinking through Keyrack (Anthropic needs the earlier thinking block’s signature back); send the tool results without reasoningEffort');
  }
  if (plan.thinking.type === 'enabled') {
    if (body.max_tokens <= plan.budget) refuse('maxTokens', `reasoningEffort ${plan.effort} thinks up to ${plan.budget} tokens, which count toward maxTokens: ask for more than ${plan.budget}`);
  } else {
    body.output_config = { ...body.output_config, effort: plan.effort === 'minimal' ? 'low' : plan.effort };
  }
  body.thinking = plan.thinking;
}
