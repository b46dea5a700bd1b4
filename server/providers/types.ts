import type { StatedLimits } from './http/rateLimitHeaders';
import type { ChatMessage, ChatRequest, FinishReason, ProviderId, TokenUsage } from '../../shared';

/** One chat completion as the adapters take it: already resolved to an upstream model id. */
export interface UpstreamRequest {
  provider: ProviderId;
  /** The provider's own model id (`gpt-4o-mini`, `claude-sonnet-4-20250514`, `gemini-2.0-flash`). */
  model: string;
  messages: ChatMessage[];
  maxTokens?: number;
  temperature?: number;
  topP?: ChatRequest['topP'];
  stop?: ChatRequest['stop'];
  seed?: ChatRequest['seed'];
  presencePenalty?: ChatRequest['presencePenalty'];
  frequencyPenalty?: ChatRequest['frequencyPenalty'];
  tools?: ChatRequest['tools'];
  toolChoice?: ChatRequest['toolChoice'];
  parallelToolCalls?: ChatRequest['parallelToolCalls'];
  responseFormat?: ChatRequest['responseFormat'];
  reasoningEffort?: ChatRequest['reasoningEffort'];
  /**
   * 'whole': nobody reads the answer before its end, so the adapter may ask for it in one
   * piece (`stream: false`) and yield it as one delta. An adapter whose provider's one-piece
   * answer it does not read may stream anyway: the events are the same either way.
   */
  delivery?: 'stream' | 'whole';
}

/**
 * What an adapter pushes, in order: `delta`s (and `reasoning`, `tool_call_delta`), then at most one `usage`, then exactly one `done`.
 * Nothing is pushed before the upstream answered 2xx, so a caller can retry elsewhere as long as
 * it has seen no event.
 */
export type AdapterEvent =
  | { type: 'delta'; text: string }
  | { type: 'reasoning'; text: string }
  /** A tool call's fragment by index: the first of an index carries id and name (see shared/chat.ts). */
  | { type: 'tool_call_delta'; index: number; id?: string; name?: string; argumentsDelta: string }
  | { type: 'usage'; usage: TokenUsage }
  | { type: 'done'; finishReason: FinishReason };

/**
 * Where an adapter pushes its events. A promise back means "wait before reading on" (the reader
 * is full): the upstream read waits with it, so a slow reader slows the provider's stream rather
 * than piling it up in memory.
 */
export type AdapterSink = (event: AdapterEvent) => void | Promise<void>;

export interface AdapterContext {
  apiKey: string;
  /** Base URL as the official SDKs take it (`https://api.openai.com/v1`), without trailing slash. */
  baseUrl: string;
  /** Aborting it closes the upstream connection at once. */
  signal: AbortSignal;
  /** Time source for HTTP-date `retry-after` and RFC 3339 reset headers; Date.now by default. */
  now?: () => number;
  /**
   * Most time until a streamed answer's response headers arrive; past it the call fails as a
   * transient ProviderError (`first_byte_timeout`) and the dispatcher tries another key. Not
   * applied to one-piece answers, whose headers come only once the whole answer is written.
   */
  firstByteTimeoutMs?: number;
  /**
   * Called at most once, when a 2xx answer's headers state the key's rate windows (issue 22,
   * learned limits); error answers carry theirs on the ProviderError. Absent: the headers are
   * not read at all. A callback, not an event: nothing is added to the per-chunk path.
   */
  onLimits?: (limits: StatedLimits) => void;
}

export type KeyTestResult = 'valid' | 'rejected' | 'unreachable';

export interface ProviderAdapter {
  /**
   * Pushes the answer to `emit` and resolves after `done`. Rejects with a (classified)
   * ProviderError when the provider fails, before or during the answer; what `emit` throws is
   * rethrown unchanged. Push rather than an async generator: a generator level costs a promise
   * and an iterator result per chunk, on every chunk of every stream (issue #8).
   */
  run(req: UpstreamRequest, ctx: AdapterContext, emit: AdapterSink): Promise<void>;
  /** Cheap authenticated call (list models) for BYOK key tests. Never throws. */
  testKey(ctx: AdapterContext): Promise<KeyTestResult>;
}

export type WireFormat = 'openai' | 'anthropic' | 'gemini';
