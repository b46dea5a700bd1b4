import type { ChatMessage } from '../../../shared';
import { ProviderError } from '../ProviderError';
import type { OpenAIChatQuirks, ProviderSpec } from '../registry';
import { refuseUnsupported, type CarriedField } from '../request/refuseUnsupported';
import type { UpstreamRequest } from '../types';
import type { OpenAIChatRequestBody, OpenAIRequestMessage } from './openaiChatApi';

/** What every OpenAI-compatible provider takes; the rest depends on the spec's quirks. */
const CORE: readonly CarriedField[] = ['maxTokens', 'temperature', 'topP', 'stop', 'images', 'responseFormat', 'reasoningEffort'];

/** A spec without `chat` quirks (tests' ad-hoc specs) is taken as OpenAI itself. */
const OPENAI_QUIRKS: OpenAIChatQuirks = {
  developerRole: true,
  mergeConsecutiveRoles: false,
  tools: true,
  parallelToolCalls: true,
  seedField: 'seed',
  penalties: true,
  responseFormats: ['json_object', 'json_schema'],
  reasoningEfforts: ['none', 'minimal', 'low', 'medium', 'high'],
};

const carriedBySpec = new WeakMap<ProviderSpec, ReadonlySet<CarriedField>>();

/** The fields a provider takes, made once per spec. */
function carriedBy(spec: ProviderSpec, quirks: OpenAIChatQuirks): ReadonlySet<CarriedField> {
  let carried = carriedBySpec.get(spec);
  if (!carried) {
    const fields = new Set<CarriedField>(CORE);
    if (quirks.tools) for (const f of ['tools', 'toolChoice', 'toolMessages'] as const) fields.add(f);
    if (quirks.parallelToolCalls) fields.add('parallelToolCalls');
    if (quirks.seedField) fields.add('seed');
    if (quirks.penalties) fields.add('presencePenalty').add('frequencyPenalty');
    carried = fields;
    carriedBySpec.set(spec, carried);
  }
  return carried;
}

function refuse(spec: ProviderSpec, field: string, what: string): never {
  throw new ProviderError({ kind: 'bad_request', status: 400, message: `${spec.id} cannot take ${what} through Keyrack`, param: field });
}

export function convertToOpenAIChatRequest(req: UpstreamRequest, spec: ProviderSpec): OpenAIChatRequestBody {
  const quirks = spec.chat ?? OPENAI_QUIRKS;
  refuseUnsupported(req, spec.id, carriedBy(spec, quirks));
  const body: OpenAIChatRequestBody = {
    model: req.model,
    messages: convertMessages(req.messages, quirks),
    stream: req.delivery !== 'whole',
  };
  // A one-piece answer always carries its usage; only a stream must ask for it.
  if (spec.streamUsageOption && body.stream) body.stream_options = { include_usage: true };
  if (req.maxTokens !== undefined) body[spec.maxTokensField ?? 'max_tokens'] = req.maxTokens;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  // The rare fields, checked only when the request has one of them (the common chat has none).
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.stop !== undefined) body.stop = req.stop;
  if (req.seed !== undefined) body[quirks.seedField ?? 'seed'] = req.seed;
  if (req.presencePenalty !== undefined) body.presence_penalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) body.frequency_penalty = req.frequencyPenalty;
  if (req.tools !== undefined) {
    body.tools = req.tools.map((t) => ({
      type: 'function',
      function: {
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        ...(t.parameters !== undefined ? { parameters: t.parameters } : {}),
        ...(t.strict !== undefined ? { strict: t.strict } : {}),
      },
    }));
  }
  if (req.toolChoice !== undefined) body.tool_choice = typeof req.toolChoice === 'string' ? req.toolChoice : { type: 'function', function: { name: req.toolChoice.name } };
  if (req.parallelToolCalls !== undefined) body.parallel_tool_calls = req.parallelToolCalls;
  const format = req.responseFormat;
  if (format !== undefined) {
    if (format.type !== 'text' && !quirks.responseFormats.includes(format.type)) refuse(spec, 'responseFormat', `a ${format.type} response format`);
    body.response_format =
      format.type === 'json_schema'
        ? {
            type: 'json_schema',
            json_schema: {
              name: format.name,
              ...(format.description !== undefined ? { description: format.description } : {}),
              schema: format.schema,
              ...(format.strict !== undefined ? { strict: format.strict } : {}),
            },
          }
        : { type: format.type };
  }
  if (req.reasoningEffort !== undefined) {
    if (!quirks.reasoningEfforts.includes(req.reasoningEffort)) refuse(spec, 'reasoningEffort', `reasoningEffort ${req.reasoningEffort}`);
    body.reasoning_effort = req.reasoningEffort;
  }
  return body;
}

function convertMessages(messages: readonly ChatMessage[], quirks: OpenAIChatQuirks): OpenAIRequestMessage[] {
  const out: OpenAIRequestMessage[] = [];
  for (const m of messages) {
    const message = convertMessage(m, quirks);
    const last = out[out.length - 1];
    // Perplexity (and some others) reject two messages of one role in a row; joining them keeps
    // the text and is what the model would have read anyway. Only plain text messages: a tool
    // call, a tool result or an image keeps its own message.
    if (quirks.mergeConsecutiveRoles && last && last.role === message.role && mergeable(last) && mergeable(message)) {
      last.content += '\n\n' + message.content;
    } else out.push(message);
  }
  return out;
}

function mergeable(m: OpenAIRequestMessage): m is OpenAIRequestMessage & { content: string } {
  return m.role !== 'tool' && typeof m.content === 'string' && !(m.role === 'assistant' && m.tool_calls);
}

function convertMessage(m: ChatMessage, quirks: OpenAIChatQuirks): OpenAIRequestMessage {
  switch (m.role) {
    case 'system':
      return { role: 'system', content: copyContent(m.content) };
    case 'developer':
      return { role: quirks.developerRole ? 'developer' : 'system', content: copyContent(m.content) };
    case 'user':
      return {
        role: 'user',
        content:
          typeof m.content === 'string'
            ? m.content
            : m.content.map((p) =>
                p.type === 'text' ? { type: 'text', text: p.text } : { type: 'image_url', image_url: { url: p.url, ...(p.detail !== undefined ? { detail: p.detail } : {}) } },
              ),
      };
    case 'assistant':
      return m.toolCalls
        ? {
            role: 'assistant',
            // OpenAI's own shape for a turn of only calls: content null.
            content: m.content === '' ? null : m.content,
            tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
          }
        : { role: 'assistant', content: m.content };
    case 'tool':
      return { role: 'tool', tool_call_id: m.toolCallId, content: copyContent(m.content) };
  }
}

function copyContent(content: string | { type: 'text'; text: string }[]): string | { type: 'text'; text: string }[] {
  return typeof content === 'string' ? content : content.map((p) => ({ type: 'text', text: p.text }));
}
