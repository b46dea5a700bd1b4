import { PROVIDERS, type ProviderId, type ReasoningEffort } from '../../shared';
import type { WireFormat } from './types';

/**
 * What an OpenAI-compatible provider's Chat Completions takes beyond the core every one of them
 * has (text and image messages, max tokens, temperature, top_p, stop): from each provider's API
 * reference. A request field the provider does not take is refused (400 naming it) before any
 * upstream call, never sent to be rejected or silently ignored there. Whether a *model* can do
 * tools, vision, structured output or reasoning is the catalog's (`capabilities`), not this.
 */
export interface OpenAIChatQuirks {
  /** Takes the `developer` role (only OpenAI); elsewhere it is sent as `system`. */
  developerRole: boolean;
  /**
   * Rejects two messages of one role in a row (Perplexity): consecutive plain text messages of
   * one role are joined. Never across tool calls, tool results or images.
   */
  mergeConsecutiveRoles: boolean;
  tools: boolean;
  parallelToolCalls: boolean;
  /** The field the sampling seed goes in (Mistral calls it `random_seed`); null: not taken. */
  seedField: 'seed' | 'random_seed' | null;
  penalties: boolean;
  /** `response_format` types taken besides `text`. */
  responseFormats: readonly ('json_object' | 'json_schema')[];
  /** `reasoning_effort` values taken; empty: the field is not taken. */
  reasoningEfforts: readonly ReasoningEffort[];
}

/**
 * Every provider as data: which wire format it speaks and where its quirks are. Adding an
 * OpenAI-compatible provider is adding an entry here.
 */
export interface ProviderSpec {
  id: ProviderId;
  wireFormat: WireFormat;
  /** As the official SDKs take it: everything before the endpoint path. */
  defaultBaseUrl: string;
  /** OpenAI-compatible only: the request field for the output cap (OpenAI deprecated `max_tokens`). */
  maxTokensField?: 'max_tokens' | 'max_completion_tokens';
  /**
   * OpenAI-compatible only: send `stream_options: { include_usage: true }`. Providers that
   * report usage anyway (or reject unknown fields) get false.
   */
  streamUsageOption?: boolean;
  /** How a key is tested for BYOK: a free authenticated call. */
  keyTest: { method: 'GET'; path: string } | { method: 'POST'; path: string; body: unknown };
  /**
   * Some providers answer a wrong key with 400 instead of 401 (xAI: "Incorrect API key provided").
   * Matching messages on a 400 classify as rejected.
   */
  rejectedKeyMessage?: RegExp;
  /**
   * OpenAI-compatible only: `x-ratelimit-limit-requests` counts requests per DAY (Groq), so it
   * is not learned as the key's RPM; its remaining and reset still are (issue 22).
   */
  requestsLimitPerDay?: boolean;
  /** OpenAI-compatible only (required there): see OpenAIChatQuirks. */
  chat?: OpenAIChatQuirks;
  /** The provider's documented Responses API (`POST <base>/responses`), passed through by /v1/responses (issue 21); absent: it has none. */
  responses?: ResponsesApiSpec;
  /**
   * Issue 21: the provider has an embeddings API (OpenAI-compatible: `POST {base}/embeddings`;
   * Gemini: `models/{model}:batchEmbedContents`), and the request field that asks for fewer
   * dimensions. Absent: an embedding model of this provider is refused (400 naming `model`).
   */
  embeddings?: { dimensionsField: 'dimensions' | 'output_dimension' | 'outputDimensionality' };
}

/** What a provider's Responses API needs of the passthrough. */
export interface ResponsesApiSpec {
  /**
   * Keeps every response at the provider unless the request says `store: false` (OpenAI, xAI):
   * the passthrough then sends `store: false` itself, as a stored response belongs to whichever
   * key's account served it, and the next request may be served by another.
   */
  storesByDefault: boolean;
}

const ALL_FORMATS = ['json_object', 'json_schema'] as const;

const OPENAI_KEY_TEST = { method: 'GET', path: '/models' } as const;

export const PROVIDER_SPECS: Record<ProviderId, ProviderSpec> = {
  openai: {
    id: 'openai',
    wireFormat: 'openai',
    defaultBaseUrl: 'https://api.openai.com/v1',
    maxTokensField: 'max_completion_tokens',
    streamUsageOption: true,
    keyTest: OPENAI_KEY_TEST,
    chat: { developerRole: true, mergeConsecutiveRoles: false, tools: true, parallelToolCalls: true, seedField: 'seed', penalties: true, responseFormats: ALL_FORMATS, reasoningEfforts: ['none', 'minimal', 'low', 'medium', 'high'] },
    // platform.openai.com/docs/api-reference/responses: `store` defaults to true.
    responses: { storesByDefault: true },
    embeddings: { dimensionsField: 'dimensions' },
  },
  groq: {
    id: 'groq',
    wireFormat: 'openai',
    defaultBaseUrl: 'https://api.groq.com/openai/v1',
    // Groq docs: "x-ratelimit-limit-requests: Always refers to Requests Per Day (RPD)".
    requestsLimitPerDay: true,
    maxTokensField: 'max_tokens',
    // Groq reports usage in `x_groq.usage` of the last chunk, and also honours stream_options.
    streamUsageOption: true,
    keyTest: OPENAI_KEY_TEST,
    // Groq's reasoning models (gpt-oss, qwen3) take reasoning_effort.
    chat: { developerRole: false, mergeConsecutiveRoles: true, tools: true, parallelToolCalls: true, seedField: 'seed', penalties: true, responseFormats: ALL_FORMATS, reasoningEfforts: ['none', 'low', 'medium', 'high'] },
    // console.groq.com/docs/responses-api (beta): "doesn't support stateful conversations yet", so nothing is stored.
    responses: { storesByDefault: false },
  },
  mistral: {
    id: 'mistral',
    wireFormat: 'openai',
    defaultBaseUrl: 'https://api.mistral.ai/v1',
    maxTokensField: 'max_tokens',
    // Mistral puts usage in the last chunk on its own and rejects fields it does not know.
    streamUsageOption: false,
    keyTest: OPENAI_KEY_TEST,
    // Mistral names the seed `random_seed`; its reasoning (Magistral) has no effort knob.
    chat: { developerRole: false, mergeConsecutiveRoles: true, tools: true, parallelToolCalls: true, seedField: 'random_seed', penalties: true, responseFormats: ALL_FORMATS, reasoningEfforts: [] },
    // Mistral's /v1/embeddings copies OpenAI's; the size field is `output_dimension` (codestral-embed; mistral-embed has none).
    embeddings: { dimensionsField: 'output_dimension' },
  },
  perplexity: {
    id: 'perplexity',
    wireFormat: 'openai',
    defaultBaseUrl: 'https://api.perplexity.ai',
    maxTokensField: 'max_tokens',
    // Every Perplexity chunk carries cumulative usage.
    streamUsageOption: false,
    // Perplexity has no model list. The key is checked before the body, so an empty request
    // costs nothing: 401 for a bad key, 400 for a good one.
    keyTest: { method: 'POST', path: '/chat/completions', body: { model: 'sonar', messages: [] } },
    // Sonar has no function calling and no seed; structured output is json_schema only; sonar-deep-research takes reasoning_effort.
    chat: { developerRole: false, mergeConsecutiveRoles: true, tools: false, parallelToolCalls: false, seedField: null, penalties: true, responseFormats: ['json_schema'], reasoningEfforts: ['low', 'medium', 'high'] },
  },
  deepseek: {
    id: 'deepseek',
    wireFormat: 'openai',
    defaultBaseUrl: 'https://api.deepseek.com',
    maxTokensField: 'max_tokens',
    streamUsageOption: true,
    keyTest: OPENAI_KEY_TEST,
    // DeepSeek: JSON output is json_object only; no seed, no reasoning_effort (deepseek-reasoner always thinks).
    chat: { developerRole: false, mergeConsecutiveRoles: true, tools: true, parallelToolCalls: false, seedField: null, penalties: true, responseFormats: ['json_object'], reasoningEfforts: [] },
  },
  xai: {
    id: 'xai',
    wireFormat: 'openai',
    defaultBaseUrl: 'https://api.x.ai/v1',
    maxTokensField: 'max_tokens',
    streamUsageOption: true,
    keyTest: OPENAI_KEY_TEST,
    rejectedKeyMessage: /incorrect api key|invalid api key/i,
    // grok-3-mini takes reasoning_effort low or high.
    chat: { developerRole: false, mergeConsecutiveRoles: true, tools: true, parallelToolCalls: true, seedField: 'seed', penalties: true, responseFormats: ALL_FORMATS, reasoningEfforts: ['low', 'high'] },
    // docs.x.ai (Generate Text): the Responses API stores responses for 30 days by default.
    responses: { storesByDefault: true },
  },
  kimi: {
    id: 'kimi',
    wireFormat: 'openai',
    defaultBaseUrl: 'https://api.moonshot.ai/v1',
    maxTokensField: 'max_tokens',
    // Moonshot puts usage inside the last chunk's choice (`choices[0].usage`).
    streamUsageOption: false,
    keyTest: OPENAI_KEY_TEST,
    // Moonshot: JSON mode is json_object only; no seed, no reasoning_effort.
    chat: { developerRole: false, mergeConsecutiveRoles: true, tools: true, parallelToolCalls: false, seedField: null, penalties: true, responseFormats: ['json_object'], reasoningEfforts: [] },
  },
  anthropic: {
    id: 'anthropic',
    wireFormat: 'anthropic',
    defaultBaseUrl: 'https://api.anthropic.com',
    keyTest: { method: 'GET', path: '/v1/models' },
  },
  google: {
    id: 'google',
    wireFormat: 'gemini',
    defaultBaseUrl: 'https://generativelanguage.googleapis.com',
    keyTest: { method: 'GET', path: '/v1beta/models' },
    embeddings: { dimensionsField: 'outputDimensionality' },
  },
};

/** The base URL to use: `<P>_BASE_URL` when set, else the provider's own. No trailing slash. */
export function baseUrlFor(provider: ProviderId, overrides: Partial<Record<ProviderId, string | null>> = {}): string {
  const url = overrides[provider] ?? PROVIDER_SPECS[provider].defaultBaseUrl;
  return url.replace(/\/+$/, '');
}

/** Base URL overrides from parsed env (`ProviderEnv.baseUrl`), keyed by provider. */
export function baseUrlOverrides(providers: readonly { provider: ProviderId; baseUrl: string | null }[]): Partial<Record<ProviderId, string>> {
  const out: Partial<Record<ProviderId, string>> = {};
  for (const p of providers) if (p.baseUrl) out[p.provider] = p.baseUrl;
  return out;
}

// Every provider in shared/providers.ts must have a spec; this fails to type-check otherwise.
PROVIDERS satisfies readonly { id: keyof typeof PROVIDER_SPECS }[];
