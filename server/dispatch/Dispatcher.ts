import { requiredCapabilities, type ChatRequest, type GatewayErrorCode, type ModelCapability, type ProviderId, type StreamEvent, type TokenUsage } from '../../shared';
import type { ModelCatalog, ResolvedModel } from '../business/types';
import { lazyChild, type Logger } from '../observability/logger';
import { ECHO_REDACTED, SecretMatcher } from '../observability/SecretMatcher';
import { createAdapters } from '../providers/createAdapters';
import { ProviderError } from '../providers/ProviderError';
import { baseUrlFor } from '../providers/registry';
import type { AdapterContext, AdapterEvent, ProviderAdapter, UpstreamRequest } from '../providers/types';
import { eventsOf, type EventSink } from '../streams/ChatEngine';
import { isStoreFailure, STORE_RETRY_AFTER_MS, STORE_UNAVAILABLE_MESSAGE } from '../ops/storeFailure';
import { abortableSleep, backoffDelay } from './backoff';
import type { AcquireResult, DispatchHooks, DispatchKeyPool, KeyLease, KeySource, LeaseOutcome } from './types';

export interface DispatchRequest {
  chat: ChatRequest;
  userId: string;
  /** The caller's abort (client gone, shutdown): closes the upstream connection at once. */
  signal: AbortSignal;
  requestId?: string;
  /** See ChatEngineRequest.delivery. */
  delivery?: 'stream' | 'whole';
  /** Tried before the provider's env pool, in order (e.g. the user's BYOK keys). */
  keySources?: KeySource[];
  /** Whether the provider's shared env pool may serve after `keySources` (a BYOK user's setting). Default: yes. */
  useSharedPool?: (provider: ProviderId) => boolean;
  /** The user's weight in a shared pool's fair share (their limits' `weight`, issue 22). Default 1. */
  weight?: number;
}

export interface DispatcherDeps {
  pool: DispatchKeyPool;
  catalog: ModelCatalog;
  /** Defaults to one adapter per provider over the shared connection pool. */
  adapters?: Partial<Record<ProviderId, ProviderAdapter>>;
  /** `<P>_BASE_URL` overrides. */
  baseUrls?: Partial<Record<ProviderId, string>>;
  /** Upstream attempts per request, across keys and fallback models. */
  maxAttempts?: number;
  /** No new attempt starts after this long (a started stream is not cut by it). */
  deadlineMs?: number;
  /**
   * UPSTREAM_FIRST_BYTE_TIMEOUT_MS: an attempt whose streamed answer has no response headers by
   * then is abandoned and retried on another key. Without it a stalled upstream held the request
   * until the deadline, which is also the request's own timeout, so no other key was ever tried
   * (issue 24.11). Capped by what is left of the deadline. Default: none (the HTTP agent's own).
   */
  firstByteTimeoutMs?: number;
  logger: Logger;
  hooks?: DispatchHooks;
  clock?: () => number;
  random?: () => number;
  /** Backoff wait; tests pass one that returns at once. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

interface Failure {
  code: GatewayErrorCode;
  message: string;
  retryAfterMs?: number;
  /** Final: no other model may be tried (the caller's fault, the answer already started, or out of attempts). */
  final: boolean;
}

interface RequestState {
  attempts: number;
  deadline: number;
}

const ABORTED: Failure = { code: 'internal', message: 'aborted', final: true };

/**
 * Turns one chat request into one normalized event stream, pushed to a sink: resolves the
 * model, leases a key, streams from the provider, reports the outcome against that key, and
 * retries on another key while nothing has reached the client yet. Every failure is an `error`
 * event.
 */
export class Dispatcher {
  private readonly adapters: Partial<Record<ProviderId, ProviderAdapter>>;
  private readonly maxAttempts: number;
  private readonly deadlineMs: number;
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(private readonly deps: DispatcherDeps) {
    this.adapters = deps.adapters ?? createAdapters();
    this.maxAttempts = deps.maxAttempts ?? 3;
    this.deadlineMs = deps.deadlineMs ?? 60_000;
    this.clock = deps.clock ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.sleep = deps.sleep ?? abortableSleep;
  }

  /**
   * Pushes the answer to `emit` (see ChatEngine.run). Never rejects unless `emit` throws; then
   * the upstream call is released, the key is not blamed, and the sink's error comes back.
   */
  async run(req: DispatchRequest, emit: EventSink): Promise<void> {
    try {
      await this.answer(req, guardSink(emit));
    } catch (error) {
      throw error instanceof SinkFailure ? error.cause : error;
    }
  }

  private async answer(req: DispatchRequest, out: EventSink): Promise<void> {
    // No controller of our own: the caller's signal stops an upstream call.
    const log = lazyChild(this.deps.logger, { requestId: req.requestId, userId: req.userId });

    let model: ResolvedModel | null;
    try {
      model = await this.deps.catalog.resolve(req.chat.model);
    } catch (error) {
      log.error({ err: describe(error) }, 'model catalog failed');
      return out({ type: 'error', code: 'internal', message: 'model catalog unavailable' });
    }
    if (!model) return out({ type: 'error', code: 'not_found', message: `unknown model: ${req.chat.model}` });
    // The catalog's capabilities, checked here once for the model and each fallback: a request
    // the model cannot take is refused before any upstream call (a 400 naming the field), and a
    // fallback that cannot take it is skipped.
    const needs = requiredCapabilities(req.chat);
    const lacking = lackedBy(model, needs);
    if (lacking) {
      return out({ type: 'error', code: 'bad_request', message: `${model.id} cannot take ${CAPABILITY_WORDS[lacking.capability]}: the catalog says it has no ${lacking.capability} capability (field ${lacking.field})` });
    }

    const state: RequestState = { attempts: 0, deadline: this.clock() + this.deadlineMs };
    const failures: Failure[] = [];
    // Fallbacks are resolved one at a time, only once the model before them failed: most
    // requests never need one, and each resolve may cost a catalog read.
    const tried = new Set<string>();
    let candidate: ResolvedModel | null = model;
    let next = 0;
    while (candidate) {
      tried.add(candidate.id);
      const result = await this.serve(candidate, req, state, log, out);
      if (result === 'done') return;
      failures.push(result);
      if (result.final) break;
      const previous: ResolvedModel = candidate;
      candidate = null;
      try {
        while (!candidate && next < model.fallbacks.length) {
          const resolved = await this.deps.catalog.resolve(model.fallbacks[next++]!);
          if (resolved && !tried.has(resolved.id) && !lackedBy(resolved, needs)) candidate = resolved;
        }
      } catch (error) {
        log.error({ err: describe(error) }, 'model catalog failed');
        failures.push({ code: 'internal', message: 'model catalog unavailable', final: true });
        break;
      }
      if (candidate) log.info({ model: previous.id }, 'provider exhausted, trying fallback model');
    }
    if (req.signal.aborted) return out({ type: 'done', finishReason: 'aborted' });
    // The primary model's refusal says most (a fallback without keys is not news), unless the
    // answer failed for good later.
    const failure = failures.find((f) => f.final) ?? failures.find((f) => f.code !== 'no_keys') ?? failures[0] ?? { code: 'internal', message: 'no attempt made', final: true };
    return out({
      type: 'error',
      code: failure.code,
      // The gateway's own words only (upstream text stays in the logs), and the id to quote.
      message: req.requestId === undefined ? failure.message : `${failure.message} (request id ${req.requestId})`,
      ...(failure.retryAfterMs !== undefined ? { retryAfterMs: Math.max(0, Math.ceil(failure.retryAfterMs)) } : {}),
    });
  }

  /** The answer as an async iterable (readers that pull: tests, tools). Stopping early aborts it. */
  stream(req: DispatchRequest): AsyncIterable<StreamEvent> {
    return eventsOf(this, req);
  }

  private async acquire(provider: ProviderId, sources: readonly KeySource[]): Promise<AcquireResult> {
    let refusal: AcquireResult | undefined;
    for (const source of sources) {
      const result = await source(provider);
      if (result.ok) return result;
      // "busy" (a key exists, later) says more than "no_keys"; keep the soonest retry.
      if (!refusal || refusal.ok || (refusal.reason === 'no_keys' && result.reason === 'busy')) refusal = result;
    }
    return refusal ?? { ok: false, reason: 'no_keys', retryAfterMs: null };
  }

  /** Serves the request from one model's provider, over as many keys as the attempt budget allows. */
  private async serve(model: ResolvedModel, req: DispatchRequest, state: RequestState, log: Logger, out: EventSink): Promise<'done' | Failure> {
    const { signal } = req;
    const provider = model.provider;
    const adapter = this.adapters[provider];
    if (!adapter) return { code: 'no_keys', message: `no adapter for ${provider}`, final: false };
    const baseUrl = baseUrlFor(provider, this.deps.baseUrls);
    // Issue 22: the shared pool knows who asks (fair share) and how long it may wait for a key:
    // the request's own maxWaitMs, within what is left of its deadline (the pool caps it too).
    const shared: KeySource[] =
      req.useSharedPool?.(provider) === false
        ? []
        : [(p) => this.deps.pool.acquire(p, { userId: req.userId, weight: req.weight ?? 1, maxWaitMs: Math.max(0, Math.min(req.chat.maxWaitMs ?? Infinity, state.deadline - this.clock())), signal })];
    const sources: KeySource[] = [...(req.keySources ?? []), ...shared];
    const upstreamReq: UpstreamRequest = {
      provider,
      model: model.upstreamModel,
      ...upstreamFieldsOf(req.chat),
      ...(req.delivery === 'whole' ? { delivery: 'whole' as const } : {}),
    };
    let last: Failure | undefined;
    let lastKind: ProviderError['kind'] | undefined;

    while (true) {
      if (signal.aborted) return ABORTED;
      if (state.attempts >= this.maxAttempts || this.clock() >= state.deadline) {
        return { ...(last ?? { code: 'upstream_error', message: 'no attempt left' }), final: true };
      }
      let acquired: AcquireResult;
      try {
        acquired = await this.acquire(provider, sources);
      } catch (error) {
        log.error({ err: describe(error), provider }, 'key pool failed');
        // Redis not answering is the store's fault, not the provider's nor a bug (issue 24.8).
        if (isStoreFailure(error)) return { code: 'store_unavailable', message: STORE_UNAVAILABLE_MESSAGE, retryAfterMs: STORE_RETRY_AFTER_MS, final: true };
        return { code: 'internal', message: 'key pool unavailable', final: true };
      }
      if (!acquired.ok) {
        const retryAfterMs = acquired.retryAfterMs ?? undefined;
        if (acquired.reason === 'no_keys') {
          return { code: 'no_keys', message: `no usable ${provider} key`, final: false };
        }
        const quota = lastKind === 'quota_exhausted';
        return {
          code: quota ? 'quota_exhausted' : 'rate_limited',
          message: quota ? `every ${provider} key is out of quota` : `every ${provider} key is busy`,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
          final: false,
        };
      }

      state.attempts += 1;
      const result = await this.attempt(model, adapter, upstreamReq, acquired.lease, baseUrl, signal, req.requestId, log, out, this.firstByteLimit(state));
      if (result === 'done') return 'done';
      if ('final' in result) return result;
      lastKind = result.kind;
      last = failureFor(result, provider);
      if (result.kind === 'bad_request') return { ...last, final: true };
      if (result.kind === 'transient') {
        const wait = Math.min(backoffDelay(state.attempts, this.random), Math.max(0, state.deadline - this.clock()));
        await this.sleep(wait, signal);
      }
      // rate_limited, quota_exhausted, rejected: the pool now knows; the next acquire picks another key.
    }
  }

  /** This attempt's wait for response headers: the configured limit, within what is left of the deadline (at least 1 ms: 0 means none to undici). */
  private firstByteLimit(state: RequestState): number | undefined {
    const limit = this.deps.firstByteTimeoutMs;
    return limit === undefined ? undefined : Math.max(1, Math.min(limit, state.deadline - this.clock()));
  }

  /** One upstream call on one key. Returns the classified error when it failed before any text. */
  private async attempt(
    model: ResolvedModel,
    adapter: ProviderAdapter,
    upstreamReq: UpstreamRequest,
    lease: KeyLease,
    baseUrl: string,
    signal: AbortSignal,
    requestId: string | undefined,
    log: Logger,
    out: EventSink,
    firstByteTimeoutMs: number | undefined,
  ): Promise<'done' | Failure | ProviderError> {
    const startedAt = this.clock();
    let reported = false;
    const report = async (outcome: LeaseOutcome, recorded: AttemptOutcome = outcome.kind) => {
      if (reported) return;
      reported = true;
      this.deps.hooks?.onAttempt?.({
        provider: model.provider,
        model: model.id,
        keyFingerprint: lease.fingerprint,
        outcome: recorded,
        durationMs: this.clock() - startedAt,
        ...(requestId !== undefined ? { requestId } : {}),
      });
      try {
        await this.deps.pool.report(lease, outcome);
      } catch (error) {
        // `fingerprint`, not `key`: the logger redacts any field named `key`.
        log.warn({ err: describe(error), fingerprint: lease.fingerprint }, 'could not report key outcome');
      }
    };

    let started = false;
    let finished = false;
    let usage: TokenUsage | undefined;
    // The hot path: one call per chunk, a promise only when the reader is full.
    const relay = (event: AdapterEvent): void | Promise<void> => {
      if (event.type === 'delta' || event.type === 'tool_call_delta' || event.type === 'reasoning') return out(event);
      if (event.type === 'usage') {
        usage = event.usage;
        return undefined;
      }
      finished = true;
      // Not awaited: the answer is complete and need not wait a store round trip. The record
      // is queued before anything this process picks next (one connection keeps command
      // order), and report() logs its own failure.
      void report({ kind: 'success', tokens: usage ? usage.inputTokens + usage.outputTokens : 0 });
      const done: StreamEvent = { type: 'done', finishReason: event.finishReason };
      if (!usage) return out(done);
      const wait = out({ type: 'usage', usage });
      return wait ? wait.then(() => out(done)) : out(done);
    };
    try {
      const ctx: AdapterContext = { apiKey: lease.secret, baseUrl, signal, now: this.clock, ...(firstByteTimeoutMs !== undefined ? { firstByteTimeoutMs } : {}) };
      await adapter.run(upstreamReq, ctx, (event) => {
        if (finished) return undefined;
        if (started) return relay(event);
        // The upstream answered 2xx and produced something: only now does the client hear of it.
        started = true;
        const wait = out({ type: 'start', provider: model.provider, model: model.id, keyFingerprint: lease.fingerprint });
        return wait ? wait.then(() => relay(event)) : relay(event);
      });
      if (finished) return 'done';
      throw new ProviderError({ kind: 'transient', message: `${model.provider}: stream ended without a finish`, providerCode: 'truncated' });
    } catch (thrown) {
      if (thrown instanceof SinkFailure) {
        // The reader failed, not the upstream: nothing to blame on the key.
        await report({ kind: 'transient' }, 'aborted');
        throw thrown;
      }
      if (signal.aborted) {
        await report({ kind: 'transient' }, 'aborted');
        return ABORTED;
      }
      const error = ProviderError.isInstance(thrown)
        ? thrown
        : new ProviderError({ kind: 'transient', message: `${model.provider}: adapter failed`, cause: thrown });
      if (!ProviderError.isInstance(thrown)) log.error({ err: new SecretMatcher([lease.secret]).scrub(describe(thrown)) }, 'adapter threw a non-provider error');
      await report(outcomeOf(error), started ? 'interrupted' : error.kind === 'bad_request' ? 'bad_request' : outcomeOf(error).kind);
      // Not `msg` for the provider's message: pino would write a second `msg` field into the line.
      // Every field that came from upstream is checked against this attempt's key once more, in
      // any encoding: the adapters' classifiers did, but an error thrown elsewhere may not have.
      const echo = new SecretMatcher([lease.secret]);
      log.warn(
        {
          provider: model.provider,
          fingerprint: lease.fingerprint,
          kind: error.kind,
          status: error.status,
          providerCode: error.providerCode === undefined ? undefined : echo.scrub(error.providerCode, ECHO_REDACTED, 8),
          param: error.param === undefined ? undefined : echo.scrub(error.param, ECHO_REDACTED, 8),
          started,
          detail: echo.scrub(error.message),
        },
        'upstream attempt failed',
      );
      if (started) {
        // Text already reached the client: a retry would bill twice and repeat it.
        return { code: 'stream_interrupted', message: `the ${model.provider} answer broke off`, final: true };
      }
      return error;
    } finally {
      // Left without an outcome (nothing else is left): not the key's fault, nothing to cool.
      if (!reported) await report({ kind: 'transient' }, 'aborted');
    }
  }
}

const CAPABILITY_WORDS: Record<ModelCapability, string> = {
  tools: 'tools or tool messages',
  vision: 'images',
  json_schema: 'a JSON response format',
  reasoning: 'a reasoning effort',
};

/** The first capability the request needs that the model lacks, or null. */
function lackedBy(model: ResolvedModel, needs: readonly { capability: ModelCapability; field: string }[]): { capability: ModelCapability; field: string } | null {
  for (const need of needs) if (!model.capabilities[need.capability]) return need;
  return null;
}

type AttemptOutcome = LeaseOutcome['kind'] | 'bad_request' | 'aborted' | 'interrupted';

/** What the pool should remember about the key. A bad request is not the key's fault. */
function outcomeOf(error: ProviderError): LeaseOutcome {
  switch (error.kind) {
    case 'rate_limited':
      return { kind: 'rate_limited', ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}) };
    case 'quota_exhausted':
      return { kind: 'quota_exhausted', ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}) };
    case 'rejected':
      return { kind: 'rejected' };
    case 'transient':
    case 'bad_request':
      return { kind: 'transient' };
  }
}

const PROMPT_TOO_LONG = /context_length_exceeded|context length|maximum context|prompt is too long|too many tokens/i;

/**
 * What the client is told of a failed attempt: a fixed message per outcome, never the
 * provider's text, which can echo the key in encodings no scrubber foresees (issue 24.5) and
 * stays in the logs. The one upstream detail passed on is the field a bad request names, once
 * it passed upstreamParam() (a plain field path holding no piece of the key).
 */
function failureFor(error: ProviderError, provider: ProviderId): Failure {
  const retry = error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {};
  switch (error.kind) {
    case 'bad_request':
      if (PROMPT_TOO_LONG.test(`${error.providerCode ?? ''} ${error.message}`)) {
        return { code: 'prompt_too_long', message: `the prompt is too long for the ${provider} model`, final: true };
      }
      return { code: 'bad_request', message: `${provider} refused the request as invalid${error.param ? ` (field ${error.param})` : ''}`, final: true };
    case 'rate_limited':
      return { code: 'rate_limited', message: `${provider} rate limit reached`, ...retry, final: false };
    case 'quota_exhausted':
      return { code: 'quota_exhausted', message: `${provider} quota exhausted`, ...retry, final: false };
    case 'rejected':
      return { code: 'upstream_error', message: `${provider} rejected the key`, final: false };
    case 'transient':
      return { code: 'upstream_error', message: `${provider} failed to answer`, final: false };
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** What a sink threw, carried through the attempt's error handling untouched. */
class SinkFailure {
  constructor(readonly cause: unknown) {}
}

/** The sink, its throws and rejections marked as the reader's (see SinkFailure). */
function guardSink(emit: EventSink): EventSink {
  const fail = (error: unknown) => {
    throw new SinkFailure(error);
  };
  return (event) => {
    let wait: void | Promise<void> = undefined;
    try {
      wait = emit(event);
    } catch (error) {
      fail(error);
    }
    return wait ? wait.catch(fail) : undefined;
  };
}

/** The chat's fields an adapter converts (every one it sets; an adapter refuses what it cannot carry). */
function upstreamFieldsOf(chat: ChatRequest): Omit<UpstreamRequest, 'provider' | 'model' | 'delivery'> {
  // maxWaitMs is the gateway's (how long to wait for a key, issue 22), not the provider's.
  const { model: _model, maxWaitMs: _maxWaitMs, ...fields } = chat;
  return fields;
}
