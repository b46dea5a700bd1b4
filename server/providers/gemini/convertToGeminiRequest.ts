import { messageText, type ChatMessage, type ImagePart, type ReasoningEffort, type Tool } from '../../../shared';
import { ProviderError } from '../ProviderError';
import { toolArgumentsObject } from '../request/toolArguments';
import { refuseUnsupported, type CarriedField } from '../request/refuseUnsupported';
import type { UpstreamRequest } from '../types';
import type { GeminiFunctionCallingMode, GeminiGenerateContentRequestBody, GeminiGenerationConfig, GeminiRequestPart } from './geminiApi';
import { checkGeminiJsonSchema } from './geminiJsonSchema';
import { isGeneratedToolCallId } from './geminiToolCallId';

/** Every request field has a Gemini counterpart (or a refusal below for the values it has none for). */
const CARRIED: ReadonlySet<CarriedField> = new Set([
  'maxTokens', 'temperature', 'topP', 'stop', 'seed', 'presencePenalty', 'frequencyPenalty', 'tools', 'toolChoice',
  'parallelToolCalls', 'responseFormat', 'reasoningEffort', 'images', 'toolMessages',
]);

/**
 * reasoningEffort as a thinking budget in tokens, as Google's own OpenAI-compatible endpoint
 * maps it (ai.google.dev/gemini-api/docs/openai): low 1024, medium 8192, high 24576, none 0
 * (thinking off; 2.5 Pro cannot turn it off and answers 400). `minimal` gets low's budget: the
 * smallest that every thinking model accepts (2.5 Flash-Lite's floor is 512).
 */
export const GEMINI_THINKING_BUDGETS: Record<ReasoningEffort, number> = { none: 0, minimal: 1024, low: 1024, medium: 8192, high: 24_576 };

/** The image types Gemini reads (ai.google.dev/gemini-api/docs/image-understanding): no GIF. */
const IMAGE_TYPES_BY_EXTENSION: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', webp: 'image/webp', heic: 'image/heic', heif: 'image/heif' };
const GEMINI_IMAGE_TYPES = new Set(Object.values(IMAGE_TYPES_BY_EXTENSION));
const DATA_URL = /^data:([^;,]+);base64,(.*)$/s;
const INT32_MAX = 2 ** 31 - 1;

/**
 * Gemini 3 answers 400 to a conversation whose function calls come back without the
 * thoughtSignature it put on them, and Keyrack's messages have nowhere to keep one (a tool call is
 * id, name and arguments). Google documents this value for history it did not write (calls from
 * another model, or injected): it skips the check, at the cost of the model not seeing its earlier
 * reasoning. Sent on each model turn's first call, where Gemini puts its own, for all but the
 * 1.x and 2.x models, which do not ask for signatures.
 */
const SKIP_SIGNATURE = 'skip_thought_signature_validator';
const NO_SIGNATURE_MODELS = /^(?:models\/)?gemini-[12](?:\.|-)/;

function refuse(param: string, why: string): never {
  throw new ProviderError({ kind: 'bad_request', status: 400, message: `google cannot take ${param} through Keyrack: ${why}`, param });
}

/**
 * The Gemini generateContent body for a request. System and developer messages become
 * `systemInstruction`; `assistant` is Gemini's `model` role, its tool calls `functionCall`
 * parts; a tool message is a `user` turn with a `functionResponse` part. Throws a bad_request
 * (400 naming the field, before any upstream call) for what Gemini cannot take.
 */
export function convertToGeminiRequest(req: UpstreamRequest): GeminiGenerateContentRequestBody {
  refuseUnsupported(req, 'google', CARRIED);
  const system: { text: string }[] = [];
  const contents: GeminiGenerateContentRequestBody['contents'] = [];
  const signCalls = !NO_SIGNATURE_MODELS.test(req.model);
  for (const [i, m] of req.messages.entries()) {
    if (m.role === 'system' || m.role === 'developer') {
      system.push({ text: messageText(m) });
      continue;
    }
    const role = m.role === 'assistant' ? 'model' : 'user';
    const parts = partsOf(m, i, req.messages, signCalls);
    // Gemini wants turns to alternate: consecutive messages of one side share a turn.
    const last = contents[contents.length - 1];
    if (last && last.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  }
  const body: GeminiGenerateContentRequestBody = { contents };
  if (system.length > 0) body.systemInstruction = { parts: system };
  if (req.tools) body.tools = [{ functionDeclarations: req.tools.map((tool, i) => declarationOf(tool, i)) }];
  const mode = callingMode(req);
  if (mode) body.toolConfig = { functionCallingConfig: mode };
  const generationConfig = generationConfigOf(req);
  if (Object.keys(generationConfig).length > 0) body.generationConfig = generationConfig;
  return body;
}

function partsOf(m: ChatMessage, i: number, messages: readonly ChatMessage[], signCalls: boolean): GeminiRequestPart[] {
  switch (m.role) {
    case 'user':
      if (typeof m.content === 'string') return [{ text: m.content }];
      return m.content.map((part, j) => (part.type === 'text' ? { text: part.text } : imagePartOf(part, `messages[${i}].content[${j}].url`)));
    case 'assistant': {
      const calls = m.toolCalls ?? [];
      const parts: GeminiRequestPart[] = m.content !== '' || calls.length === 0 ? [{ text: m.content }] : [];
      for (const [j, call] of calls.entries()) {
        const args = argumentsOf(call.arguments, `messages[${i}].toolCalls[${j}].arguments`);
        parts.push({ functionCall: { name: call.name, args, ...idOf(call.id) }, ...(signCalls && j === 0 ? { thoughtSignature: SKIP_SIGNATURE } : {}) });
      }
      return parts;
    }
    case 'tool':
      return [{ functionResponse: { name: calledName(m.toolCallId, i, messages), response: toolResponseOf(messageText(m)), ...idOf(m.toolCallId) } }];
    default:
      return [{ text: messageText(m) }];
  }
}

/** Gemini never saw the ids Keyrack made up for its calls: those stay out (it pairs by order then). */
function idOf(id: string): { id?: string } {
  return isGeneratedToolCallId(id) ? {} : { id };
}

/** A data URL's bytes go inline; an http(s) URL is fileData, its type read from the file extension. */
function imagePartOf(part: ImagePart, param: string): GeminiRequestPart {
  const data = DATA_URL.exec(part.url);
  if (data) {
    const mimeType = data[1] as string;
    if (!GEMINI_IMAGE_TYPES.has(mimeType)) refuse(param, `Gemini reads PNG, JPEG, WebP, HEIC and HEIF images, not ${mimeType}`);
    return { inlineData: { mimeType, data: data[2] as string } };
  }
  let pathname: string;
  try {
    pathname = new URL(part.url).pathname;
  } catch {
    refuse(param, 'not a URL');
  }
  const extension = /\.([A-Za-z0-9]+)$/.exec(pathname)?.[1]?.toLowerCase();
  const mimeType = extension ? IMAGE_TYPES_BY_EXTENSION[extension] : undefined;
  if (!mimeType) refuse(param, 'Gemini needs an image URL\'s type: name the file .png, .jpg, .jpeg, .webp, .heic or .heif, or send a data URL');
  return { fileData: { mimeType, fileUri: part.url } };
}

/** A call's arguments as the JSON object Gemini's `args` is. */
function argumentsOf(text: string, param: string): Record<string, unknown> {
  const parsed = toolArgumentsObject(text);
  if (!parsed.ok) refuse(param, parsed.problem === 'not_json' ? "Gemini takes a call's arguments as a JSON object, and this is not JSON" : "Gemini takes a call's arguments as a JSON object");
  return parsed.value;
}

/** Gemini names the function a response answers: the name of the call with that id, in the nearest earlier assistant message. */
function calledName(toolCallId: string, i: number, messages: readonly ChatMessage[]): string {
  for (let k = i - 1; k >= 0; k -= 1) {
    const m = messages[k] as ChatMessage;
    if (m.role !== 'assistant') continue;
    const call = m.toolCalls?.find((c) => c.id === toolCallId);
    if (call) return call.name;
  }
  return refuse(`messages[${i}].toolCallId`, 'a tool message answers a tool call of an earlier assistant message');
}

/**
 * A tool's result as Gemini's `response` object: a JSON object as it is; anything else (a string,
 * a number, an array, text that is not JSON) under `output`, the key Gemini reads as the output.
 */
export function toolResponseOf(text: string): Record<string, unknown> {
  let value: unknown = text;
  try {
    value = JSON.parse(text);
  } catch {
    // Plain text: the output as it is.
  }
  return isPlainObject(value) ? value : { output: value };
}

function declarationOf(tool: Tool, i: number) {
  if (tool.parameters) checkGeminiJsonSchema(tool.parameters, `tools[${i}].parameters`);
  return {
    name: tool.name,
    ...(tool.description !== undefined ? { description: tool.description } : {}),
    ...(tool.parameters ? { parametersJsonSchema: tool.parameters } : {}),
  };
}

/**
 * toolChoice as functionCallingConfig: auto AUTO, none NONE, required ANY, a named function ANY
 * limited to it. ANY holds calls to their schema; for `auto` a strict tool asks for VALIDATED
 * (AUTO with schema-held calls). Gemini calls several functions at once when it sees fit and
 * has no switch for it: parallelToolCalls true is what it does, false is refused.
 */
function callingMode(req: UpstreamRequest): { mode: GeminiFunctionCallingMode; allowedFunctionNames?: string[] } | undefined {
  if (req.parallelToolCalls === false) refuse('parallelToolCalls', 'Gemini cannot be held to one call per answer');
  const strict = req.tools?.some((tool) => tool.strict === true) ?? false;
  const choice = req.toolChoice;
  if (choice === undefined) return strict ? { mode: 'VALIDATED' } : undefined;
  if (typeof choice === 'object') return { mode: 'ANY', allowedFunctionNames: [choice.name] };
  switch (choice) {
    case 'auto':
      return { mode: strict ? 'VALIDATED' : 'AUTO' };
    case 'none':
      return { mode: 'NONE' };
    case 'required':
      return { mode: 'ANY' };
  }
}

function generationConfigOf(req: UpstreamRequest): GeminiGenerationConfig {
  const config: GeminiGenerationConfig = {};
  if (req.maxTokens !== undefined) config.maxOutputTokens = req.maxTokens;
  if (req.temperature !== undefined) config.temperature = req.temperature;
  if (req.topP !== undefined) config.topP = req.topP;
  if (req.stop !== undefined) config.stopSequences = req.stop;
  if (req.seed !== undefined) {
    // Gemini's seed is an int32.
    if (req.seed > INT32_MAX || req.seed < -INT32_MAX - 1) refuse('seed', `Gemini takes a seed from ${-INT32_MAX - 1} to ${INT32_MAX}`);
    config.seed = req.seed;
  }
  if (req.presencePenalty !== undefined) config.presencePenalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) config.frequencyPenalty = req.frequencyPenalty;
  const format = req.responseFormat;
  if (format?.type === 'json_object') config.responseMimeType = 'application/json';
  if (format?.type === 'json_schema') {
    checkGeminiJsonSchema(format.schema, 'responseFormat.schema');
    config.responseMimeType = 'application/json';
    // Gemini has no name for a response schema (a label only); the description guides the model, so it goes into the schema.
    config.responseJsonSchema = format.description !== undefined && format.schema.description === undefined ? { ...format.schema, description: format.description } : format.schema;
    if (format.description !== undefined && format.schema.description !== undefined && format.schema.description !== format.description) {
      refuse('responseFormat.description', 'Gemini takes one description, and the schema has its own');
    }
  }
  if (req.reasoningEffort !== undefined) {
    const thinkingBudget = GEMINI_THINKING_BUDGETS[req.reasoningEffort];
    // Thought summaries come back as reasoning; with thinking off there are none to ask for.
    config.thinkingConfig = thinkingBudget === 0 ? { thinkingBudget } : { thinkingBudget, includeThoughts: true };
  }
  return config;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `models/gemini-2.0-flash` and `gemini-2.0-flash` both name the model; the path wants the bare id. */
export function geminiModelPath(model: string): string {
  return encodeURIComponent(model.replace(/^models\//, ''));
}
