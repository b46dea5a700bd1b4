import { requiredCapabilities, type ChatRequest, type GatewayErrorCode, type ModelCapability, type ModelKind, type ProviderId, type StreamEvent, type TokenUsage } from '../../shared';
import type { ModelCatalog, ResolvedModel } from '../business/types';
import { lazyChild, type Logger } from '../observability/logger';
import { ECHO_REDACTED, SecretMatcher } from '../observability/SecretMatcher';
import { createAdapters } from '../providers/createAdapters';
import { ProviderError } from '../providers/ProviderError';
import { baseUrlFor } from '../providers/registry';
import type { AdapterContext, AdapterEvent, ProviderAdapter, UpstreamRequest } from '../providers/types';
import { eventsOf, type EventSink } from '../streams/ChatEngine';
import { isStoreFailure, STORE_RETRY_AFTER_MS, STORE_UNAVAILABLE_MESSAGE } from '../ops/storeFailure';
import type { StatedLimits } from '../providers/http/rateLimitHeaders';
import { abortableSleep, backoffDelay } from './backoff';
import { limitObservationOf } from './limitObservation';
import type { PooledCallFailure, PooledCallRequest, PooledCallResult } from './pooledCall';
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
  /**
   * Issue 22 (LEARN_LIMITS): read the rate windows each answer states and hand them to the pool,
   * which paces keys by them. Default true; false reads no headers at all.
   */
  learnLimits?: boolean;
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
  private readonly learnLimits: boolean;

  constructor(private readonly deps: DispatcherDeps) {
    this.learnLimits = deps.learnLimits ?? true;
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
    // An embedding model cannot chat (issue 21): refused before any upstream call, naming the field.
    if (model.kind !== undefined && model.kind !== 'chat') return out({ type: 'error', code: 'bad_request', message: wrongKind(model, 'chat') });
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
          if (resolved && !tried.has(resolved.id) && !lackedBy(resolved, needs) && (resolved.kind ?? 'chat') === 'chat') candidate = resolved;
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

  /**
   * A pooled call other than a chat (issue 21; see pooledCall.ts): the same model resolution,
   * key leasing, outcome reports, retries on other keys, deadline and attempt budget as `run`,
   * around an attempt the caller writes. Chat keeps `run`, whose per-chunk path is its own
   * (events relayed without a promise or an allocation each); both share serveOnKeys and the
   * attempt's report and failure handling. Never rejects: every failure is a result.
   */
  async call<T>(req: PooledCallRequest<T>): Promise<PooledCallResult<T>> {
    const log = lazyChild(this.deps.logger, { requestId: req.requestId, userId: req.userId });
    const fail = (failure: Omit<Failure, 'final'>, model: ResolvedModel | null, started = false): PooledCallFailure => ({
      ok: false,
      code: failure.code,
      message: req.requestId === undefined ? failure.message : `${failure.message} (request id ${req.requestId})`,
      ...(failure.retryAfterMs !== undefined ? { retryAfterMs: Math.max(0, Math.ceil(failure.retryAfterMs)) } : {}),
      started,
      model,
    });
    let model: ResolvedModel | null;
    try {
      model = await this.deps.catalog.resolve(req.model);
    } catch (error) {
      log.error({ err: describe(error) }, 'model catalog failed');
      return fail({ code: 'internal', message: 'model catalog unavailable' }, null);
    }
    if (!model) return fail({ code: 'not_found', message: `unknown model: ${req.model}` }, null);
    if ((model.kind ?? 'chat') !== req.kind) return fail({ code: 'bad_request', message: wrongKind(model, req.kind) }, model);
    const unsupported = req.unsupported?.(model);
    if (unsupported) {
      const { message, field } = typeof unsupported === 'string' ? { message: unsupported, field: 'model' } : unsupported;
      return fail({ code: 'bad_request', message: `${message} (field ${field})` }, model);
    }

    const served = model;
    const baseUrl = baseUrlFor(served.provider, this.deps.baseUrls);
    const state: RequestState = { attempts: 0, deadline: this.clock() + this.deadlineMs };
    let answer: { value: T; usage: TokenUsage | null; keyFingerprint: string } | undefined;
    let started = false;
    const result = await this.serveOnKeys(served, req, req.maxWaitMs, state, log, async (lease, firstByteTimeoutMs) => {
      const report = this.reporter(served, lease, req.requestId, log);
      const startedAt = this.clock();
      const ctx: AdapterContext = { apiKey: lease.secret, baseUrl, signal: req.signal, now: this.clock, ...(firstByteTimeoutMs !== undefined ? { firstByteTimeoutMs } : {}) };
      try {
        const done = await req.attempt({ ctx, model: served, keyFingerprint: lease.fingerprint, started: () => void (started = true) });
        started = true;
        const usage = done.usage;
        // Not awaited, as for chat: the answer need not wait a store round trip (report() logs its own failure).
        void report({ kind: 'success', tokens: usage ? usage.inputTokens + usage.outputTokens : 0 });
        answer = { value: done.value, usage, keyFingerprint: lease.fingerprint };
        return 'done';
      } catch (thrown) {
        return this.failedAttempt(thrown, served, lease, req.signal, started, log, report, startedAt);
      } finally {
        if (!report.done) await report({ kind: 'transient' }, 'aborted');
      }
    });
    if (result === 'done' && answer) return { ok: true, value: answer.value, usage: answer.usage, model: served, keyFingerprint: answer.keyFingerprint };
    if (result === 'done') return fail({ code: 'internal', message: 'no answer' }, served, started);
    return fail(result, served, started);
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

  /** Serves the chat from one model's provider (see serveOnKeys). */
  private serve(model: ResolvedModel, req: DispatchRequest, state: RequestState, log: Logger, out: EventSink): Promise<'done' | Failure> {
    const provider = model.provider;
    const adapter = this.adapters[provider];
    if (!adapter) return Promise.resolve({ code: 'no_keys', message: `no adapter for ${provider}`, final: false });
    const baseUrl = baseUrlFor(provider, this.deps.baseUrls);
    const upstreamReq: UpstreamRequest = {
      provider,
      model: model.upstreamModel,
      ...upstreamFieldsOf(req.chat),
      ...(req.delivery === 'whole' ? { delivery: 'whole' as const } : {}),
    };
    return this.serveOnKeys(model, req, req.chat.maxWaitMs, state, log, (lease, firstByteTimeoutMs) =>
      this.attempt(model, adapter, upstreamReq, lease, baseUrl, req.signal, req.requestId, log, out, firstByteTimeoutMs),
    );
  }

  /**
   * Serves one model from its provider's keys, over as many keys as the attempt budget allows:
   * lease, one attempt (`attemptOn`, which reports the lease's outcome), and on a failure
   * before anything reached the client, the next key. Shared by chat (serve) and every other
   * pooled operation (call; issue 21), so both pick, cool down and retry the same way.
   */
  private async serveOnKeys(
    model: ResolvedModel,
    req: Pick<DispatchRequest, 'signal' | 'keySources' | 'useSharedPool' | 'userId' | 'weight'>,
    /** How long the request may wait for a key of the shared pool (issue 22); the pool caps it. */
    maxWaitMs: number | undefined,
    state: RequestState,
    log: Logger,
    attemptOn: (lease: KeyLease, firstByteTimeoutMs: number | undefined) => Promise<'done' | Failure | ProviderError>,
  ): Promise<'done' | Failure> {
    const { signal } = req;
    const provider = model.provider;
    // Issue 22: the shared pool knows who asks (fair share) and how long it may wait for a key:
    // the request's own maxWaitMs, within what is left of its deadline (the pool caps it too).
    const shared: KeySource[] =
      req.useSharedPool?.(provider) === false
        ? []
        : [(p) => this.deps.pool.acquire(p, { userId: req.userId, weight: req.weight ?? 1, maxWaitMs: Math.max(0, Math.min(maxWaitMs ?? Infinity, state.deadline - this.clock())), signal })];
    const sources: KeySource[] = [...(req.keySources ?? []), ...shared];
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
      const result = await attemptOn(acquired.lease, this.firstByteLimit(state));
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
    const report = this.reporter(model, lease, requestId, log);
    let started = false;
    let finished = false;
    let usage: TokenUsage | undefined;
    // What the 2xx answer's headers stated (issue 22): set once by the adapter, before any chunk.
    let stated: StatedLimits | undefined;
    const startedAt = this.clock();
    const withLimits = <T extends LeaseOutcome>(outcome: T, limits: StatedLimits | undefined): T => this.withLimits(outcome, limits, startedAt);
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
      void report(withLimits({ kind: 'success', tokens: usage ? usage.inputTokens + usage.outputTokens : 0 }, stated));
      const done: StreamEvent = { type: 'done', finishReason: event.finishReason };
      if (!usage) return out(done);
      const wait = out({ type: 'usage', usage });
      return wait ? wait.then(() => out(done)) : out(done);
    };
    try {
      const ctx: AdapterContext = {
        apiKey: lease.secret,
        baseUrl,
        signal,
        now: this.clock,
        ...(firstByteTimeoutMs !== undefined ? { firstByteTimeoutMs } : {}),
        ...(this.learnLimits ? { onLimits: (limits: StatedLimits) => void (stated = limits) } : {}),
      };
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
      return this.failedAttempt(thrown, model, lease, signal, started, log, report, startedAt);
    } finally {
      // Left without an outcome (nothing else is left): not the key's fault, nothing to cool.
      if (!report.done) await report({ kind: 'transient' }, 'aborted');
    }
  }

  /**
   * One outcome report per attempt, to the metrics hook and the pool. `done` tells whether it
   * was made (the attempt's `finally` reports what was left without an outcome).
   */
  private reporter(model: ResolvedModel, lease: KeyLease, requestId: string | undefined, log: Logger): AttemptReport {
    const startedAt = this.clock();
    const report = (async (outcome: LeaseOutcome, recorded: AttemptOutcome = outcome.kind) => {
      if (report.done) return;
      report.done = true;
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
    }) as AttemptReport;
    report.done = false;
    return report;
  }

  /**
   * What an attempt that threw comes to: reported against the key (a bad request and an abort
   * are not its fault), logged with every upstream field scrubbed of the key, and either the
   * classified error (nothing reached the client: another key may serve) or a final failure.
   */
  /** The outcome with what the provider stated of its limits (issue 22), when learning is on. */
  private withLimits<T extends LeaseOutcome>(outcome: T, limits: StatedLimits | undefined, startedAt: number): T {
    return limits && this.learnLimits ? { ...outcome, limits: limitObservationOf(limits, startedAt, this.clock()) } : outcome;
  }

  private async failedAttempt(thrown: unknown, model: ResolvedModel, lease: KeyLease, signal: AbortSignal, started: boolean, log: Logger, report: AttemptReport, startedAt: number): Promise<Failure | ProviderError> {
    if (signal.aborted) {
      await report({ kind: 'transient' }, 'aborted');
      return ABORTED;
    }
    const error = ProviderError.isInstance(thrown)
      ? thrown
      : new ProviderError({ kind: 'transient', message: `${model.provider}: adapter failed`, cause: thrown });
    if (!ProviderError.isInstance(thrown)) log.error({ err: new SecretMatcher([lease.secret]).scrub(describe(thrown)) }, 'adapter threw a non-provider error');
    const outcome = outcomeOf(error);
    // A 429's stated windows are the ones that matter most (issue 22).
    await report(outcome.kind === 'rate_limited' || outcome.kind === 'quota_exhausted' ? this.withLimits(outcome, error.limits, startedAt) : outcome, started ? 'interrupted' : error.kind === 'bad_request' ? 'bad_request' : outcome.kind);
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
      // Something already reached the client: a retry would bill twice and repeat it.
      return { code: 'stream_interrupted', message: `the ${model.provider} answer broke off`, final: true };
    }
    return error;
  }
}

interface AttemptReport {
  (outcome: LeaseOutcome, recorded?: AttemptOutcome): Promise<void>;
  done: boolean;
}

/** The refusal of a model used on an endpoint of another kind (issue 21), naming the field. */
function wrongKind(model: ResolvedModel, wanted: ModelKind): string {
  const kind = model.kind ?? 'chat';
  return `${model.id} is ${kind === 'embedding' ? 'an embedding' : 'a chat'} model and cannot serve ${wanted === 'embedding' ? 'embeddings' : 'chat completions'} (field model)`;
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
