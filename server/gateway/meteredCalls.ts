import type { ProviderId, TokenUsage } from '../../shared';
import type { BusinessConfig } from '../business/BusinessConfig';
import { actualCost, estimateCost, MAX_OUTPUT_TOKENS, maxCost } from '../business/cost';
import type { ResolvedModel } from '../business/types';
import type { PooledAttemptFn, PooledCallFailure, PooledCallRequest, PooledCallResult } from '../dispatch/pooledCall';
import type { Logger } from '../observability/logger';
import type { GatewayMetrics } from '../observability/metrics';
import { ShuttingDownError, type ShutdownCoordinator } from '../ops/shutdown';
import type { Admission, UsageHold, UsageLedger, UsageRecordInput } from '../usage/UsageLedger';
import { refusalEvent } from './meteredChatEngine';
import { userKeySources, type UserKeySourceDeps } from './userKeySources';

/**
 * The business rules of chat (meteredChatEngine) and its tracking (trackedEngine), around a
 * pooled call that is not a chat (issue 21: /v1/embeddings, /v1/messages, /v1/responses):
 * - the user's limits: RPM and the daily budget, whose reservation holds the call's most
 *   possible cost (the caller's token bound at the model's prices, maxCost) until the record
 *   of what it cost replaces it, or gives it back when nothing was produced;
 * - the user's own keys first (BYOK), the shared pool after them unless the user said no;
 * - the record in the usage ledger: the provider's usage at the catalog's prices, markup
 *   included; a call cut after it started (client gone, stream broken, shutdown) is billed for
 *   what it produced (`estimatedInputTokens` plus `producedOutputTokens()`), as chat bills a
 *   cut answer (issue 24.4);
 * - shutdown tracking (a call still running after the grace is aborted: `shutting_down`) and
 *   the request, token and cost metrics chat has.
 * Chat keeps its own layers: its per-chunk path is tuned event by event (issue #8), and nothing
 * here runs per chunk.
 */
export interface MeteredCalls {
  call<T>(req: MeteredCallRequest<T>): Promise<MeteredCallResult<T>>;
}

export interface MeteredCallRequest<T> extends Pick<PooledCallRequest<T>, 'model' | 'kind' | 'userId' | 'signal' | 'requestId' | 'unsupported' | 'maxWaitMs'> {
  /**
   * The budget's bound: at most this many input tokens (promptTokensAtMost-style: UTF-8 bytes
   * are an upper bound) and output tokens. Output default: the provider's largest output
   * (MAX_OUTPUT_TOKENS). Held at admission for budgeted users only.
   */
  bound: { inputTokensAtMost: number; outputTokensAtMost?: number };
  /** The input's estimated tokens (ESTIMATED_BYTES_PER_TOKEN): the estimate, and a cut call's input bill. */
  estimatedInputTokens: number;
  /** What a call cut after its start produced so far, in estimated output tokens (streamed bytes / ESTIMATED_BYTES_PER_TOKEN). */
  producedOutputTokens?: () => number;
  attempt: PooledAttemptFn<T>;
}

export type MeteredCallResult<T> =
  | { ok: true; value: T; usage: TokenUsage | null; model: ResolvedModel; keyFingerprint: string; cost: { estimatedUsd: number; actualUsd: number } }
  | PooledCallFailure;

/** What the metered calls need of the Dispatcher: its `call`. */
export interface PooledCaller {
  call<T>(req: PooledCallRequest<T>): Promise<PooledCallResult<T>>;
}

export interface MeteredCallsDeps extends UserKeySourceDeps {
  inner: PooledCaller;
  business: Pick<BusinessConfig, 'getSettings' | 'resolve'>;
  ledger: UsageLedger;
  coordinator: ShutdownCoordinator;
  metrics: GatewayMetrics;
  logger: Logger;
}

export function createMeteredCalls(deps: MeteredCallsDeps): MeteredCalls {
  return {
    async call<T>(req: MeteredCallRequest<T>): Promise<MeteredCallResult<T>> {
      const { userId } = req;
      // Aborted by the caller (client gone) or by shutdown past its grace.
      const local = new AbortController();
      const onCallerAbort = () => local.abort(req.signal.reason);
      if (req.signal.aborted) local.abort(req.signal.reason);
      else req.signal.addEventListener('abort', onCallerAbort, { once: true });
      const untrack = deps.coordinator.track(local);
      let labels = { provider: 'none', model: 'none' };
      const count = (status: string) => deps.metrics.requests.inc({ ...labels, status });
      try {
        const refused = (failure: Omit<PooledCallFailure, 'ok' | 'started' | 'model'>): PooledCallFailure => {
          count(failure.code);
          return { ok: false, ...failure, started: false, model: null };
        };
        // Fail open, as chat: an unreachable store must not stop paying users (the pool still guards the keys).
        const limits = await deps.ledger.getLimits(userId).catch((error: unknown) => {
          deps.logger.warn({ err: errorName(error) }, 'user limits unavailable; request allowed');
          return null;
        });
        const settings = await deps.business.getSettings();
        const model = await deps.business.resolve(req.model);
        let hold: UsageHold | null = null;
        if (limits && (limits.dailyBudgetUsd !== undefined || limits.rpm !== undefined)) {
          const holdUsd =
            limits.dailyBudgetUsd !== undefined && model
              ? maxCost([model], req.bound.inputTokensAtMost, req.bound.outputTokensAtMost ?? MAX_OUTPUT_TOKENS[model.provider], settings)
              : undefined;
          const admitted = await deps.ledger.admit(userId, holdUsd).catch((error: unknown): Admission => {
            deps.logger.warn({ err: errorName(error) }, 'user limits unavailable; request allowed');
            return { ok: true, hold: null };
          });
          if (!admitted.ok) {
            const event = refusalEvent(admitted);
            return refused({ code: event.code, message: event.message, retryAfterMs: event.retryAfterMs ?? admitted.retryAfterMs });
          }
          hold = admitted.hold;
        }
        const { keySources, ownProviders, fallbackToSharedPool } = await userKeySources(deps, userId);

        let servedBy: ProviderId | null = null;
        const record = (usage: Pick<TokenUsage, 'inputTokens' | 'outputTokens' | 'cachedInputTokens'>, priced: ResolvedModel): number => {
          const costUsd = actualCost(priced, usage, settings);
          const entry: UsageRecordInput = { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, costUsd, model: priced.id, provider: priced.provider };
          // Into the ledger's outbox (it settles the hold); the store write happens off the answer's path.
          deps.ledger.recordSoon(userId, entry, hold);
          deps.metrics.tokens.inc({ ...labels, direction: 'input' }, usage.inputTokens);
          deps.metrics.tokens.inc({ ...labels, direction: 'output' }, usage.outputTokens);
          if (costUsd) deps.metrics.costUsd.inc(labels, costUsd);
          return costUsd;
        };

        const result = await deps.inner.call<T>({
          model: req.model,
          kind: req.kind,
          userId,
          signal: local.signal,
          ...(req.requestId !== undefined ? { requestId: req.requestId } : {}),
          ...(req.unsupported ? { unsupported: req.unsupported } : {}),
          ...(req.maxWaitMs !== undefined ? { maxWaitMs: req.maxWaitMs } : {}),
          // The user's weight in the shared pools' fair share (issue 22), as for a chat.
          ...(limits?.weight !== undefined ? { weight: limits.weight } : {}),
          keySources,
          useSharedPool: (provider) => fallbackToSharedPool || !ownProviders.has(provider),
          attempt: (attempt) => {
            labels = { provider: attempt.model.provider, model: attempt.model.id };
            return req.attempt({
              ...attempt,
              started: () => {
                servedBy = attempt.model.provider;
                attempt.started();
              },
            });
          },
        });

        if (result.ok) {
          const estimatedUsd = estimateCost(result.model, req.estimatedInputTokens, { ...settings, expected_output_tokens: 0 });
          let actualUsd = 0;
          if (result.usage) actualUsd = record(result.usage, result.model);
          else if (hold) deps.ledger.release(userId, hold);
          count('ok');
          return { ...result, cost: { estimatedUsd, actualUsd } };
        }
        if (result.started && servedBy !== null && result.model) {
          // Cut after it started: billed for what it produced (issue 24.4), never retried.
          record({ inputTokens: req.estimatedInputTokens, outputTokens: req.producedOutputTokens?.() ?? 0, cachedInputTokens: 0 }, result.model);
        } else if (hold) deps.ledger.release(userId, hold);
        if (ShuttingDownError.isInstance(local.signal.reason)) {
          count('shutting_down');
          return { ...result, code: 'shutting_down', message: new ShuttingDownError().message };
        }
        count(local.signal.aborted ? 'aborted' : result.code);
        return result;
      } finally {
        req.signal.removeEventListener('abort', onCallerAbort);
        untrack();
      }
    },
  };
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'unknown';
}
