import type { GatewayErrorCode, TokenUsage } from '../../shared';
import type { ModelKind } from '../../shared/business';
import type { ResolvedModel } from '../business/types';
import type { AdapterContext } from '../providers/types';
import type { DispatchRequest } from './Dispatcher';

/**
 * A pooled call: one upstream operation other than a chat (embeddings, Anthropic's Messages
 * passthrough, the Responses API; issue 21) served from the key pools exactly as chat is.
 * The Dispatcher resolves the model, checks its kind, leases a key, runs `attempt` on it, reports
 * the outcome to the pool, and on a classified failure before the answer started tries another
 * key (cooldowns, Retry-After, deadline, attempt budget and first-byte timeout as for chat).
 * The operation knows its own wire; the Dispatcher knows keys.
 *
 * Not served by fallback models: another provider's model would answer in another wire format
 * (Messages, Responses) or in another vector space (embeddings).
 */

/** What one attempt on one key is given. */
export interface PooledAttempt {
  /** The lease's key and its provider's base URL, the request's signal, the first-byte limit. */
  ctx: AdapterContext;
  /** The model being served (catalog id, provider, upstream id, prices). */
  model: ResolvedModel;
  /** For logs and headers; never the key. */
  keyFingerprint: string;
  /**
   * Call once the upstream answered 2xx and before anything is written to the client: from then
   * on a failure is final (never retried on another key: it would repeat what was sent and bill
   * twice) and billed as a cut answer. A whole answer (embeddings) may never call it: returning
   * is the start and the end at once.
   */
  started(): void;
}

/** What a successful attempt ends with. */
export interface PooledAnswer<T> {
  value: T;
  /** The provider's usage, or an estimate where it reports none (say so at the call site); null: nothing to bill. */
  usage: TokenUsage | null;
}

/**
 * One attempt on one key. Throw a ProviderError (from the providers' classifiers:
 * classifyOpenAIError, classifyAnthropicError, classifyGeminiError, or UpstreamHttp's network
 * errors) when the upstream failed: before `started()` another key is tried, after it the call
 * ends as `stream_interrupted`. Resolve with the answer once it is complete.
 */
export type PooledAttemptFn<T> = (attempt: PooledAttempt) => Promise<PooledAnswer<T>>;

export interface PooledCallRequest<T> extends Pick<DispatchRequest, 'userId' | 'signal' | 'requestId' | 'keySources' | 'useSharedPool' | 'weight'> {
  /** As the client named it: a catalog id or `provider/model`. */
  model: string;
  /** The kind of model the endpoint serves; a model of another kind is a 400 naming `model`. */
  kind: ModelKind;
  /**
   * Why this model cannot serve this request (its provider has no embeddings or Responses API,
   * it cannot shorten its vectors), as a sentence; null when it can. Refused as a 400 before any
   * key is leased, naming `model`, or `field` when given as `{ message, field }` (the request's
   * own field name, e.g. `dimensions`).
   */
  unsupported?: (model: ResolvedModel) => string | { message: string; field: string } | null;
  /** How long this call may wait for a key when every key is busy (issue 22), as a chat's maxWaitMs. */
  maxWaitMs?: number;
  attempt: PooledAttemptFn<T>;
}

export type PooledCallResult<T> =
  | { ok: true; value: T; usage: TokenUsage | null; model: ResolvedModel; keyFingerprint: string }
  | PooledCallFailure;

export interface PooledCallFailure {
  ok: false;
  /** Mapped to HTTP as chat's are (OPENAI_ERROR_OF, TRPC_CODE_OF); the message is the gateway's own words plus the request id. */
  code: GatewayErrorCode;
  message: string;
  retryAfterMs?: number;
  /** Whether the answer had started (`started()` was called): the client may have received part of it. */
  started: boolean;
  /** The model that was being served, when it was resolved. */
  model: ResolvedModel | null;
}
