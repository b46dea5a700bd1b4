import type { ProviderId, StreamEvent } from '../../shared';
import type { BusinessConfig } from '../business/BusinessConfig';
import { checkPrompt } from '../business/checkPrompt';
import { actualCost, estimateCost, maxCost } from '../business/cost';
import { ESTIMATED_BYTES_PER_TOKEN, promptTokensAtMost } from '../business/countPromptTokens';
import type { ResolvedModel } from '../business/types';
import type { DispatchRequest } from '../dispatch/Dispatcher';
import type { Logger } from '../observability/logger';
import type { ChatEngine, ChatEngineRequest, EventSink } from '../streams/ChatEngine';
import type { Admission, LimitRefusal, UsageHold, UsageLedger, UsageRecordInput } from '../usage/UsageLedger';
import { userKeySources, type UserKeySourceDeps } from './userKeySources';

/** What the metered engine needs of the dispatcher: its run, with extra key sources. */
export interface KeyedChatEngine {
  run(req: DispatchRequest, emit: EventSink): Promise<void>;
}

export interface MeteredChatEngineDeps extends UserKeySourceDeps {
  inner: KeyedChatEngine;
  business: BusinessConfig;
  ledger: UsageLedger;
  logger: Logger;
}

/**
 * The business rules around one chat, for tRPC and /v1 alike: the user's limits (RPM, daily
 * budget), the prompt limits (a `warning` over the soft limit, refused over the hard one, both
 * before any upstream call), the user's own keys first (BYOK), and cost: estimated before the
 * call, actual from the provider's reported usage, both in the `usage` event and in the user's
 * ledger.
 *
 * A daily budget is enforced by reservation (issue 24.3): the request's most possible cost
 * (maxCost) is held at admission, atomically across instances, and the record of what it cost
 * replaces the hold; a request that produced nothing gives it back.
 *
 * An answer that ends without the provider's usage (the client went away, the tab closed,
 * shutdown or a stall cut it, the stream broke) is billed for what was produced (issue 24.4):
 * the prompt's tokens plus the streamed text's, estimated at ESTIMATED_BYTES_PER_TOKEN bytes of
 * UTF-8 per token (the tokenizer's table is too big to load for this; it is the same estimate
 * the prompt gets below the limits), priced by the model that served it.
 */
export function createMeteredChatEngine(deps: MeteredChatEngineDeps): ChatEngine {
  return {
    async run(req: ChatEngineRequest, emit: EventSink): Promise<void> {
      const { userId } = req;
      // Cached per user; fail open: an unreachable store must not stop paying users (the pool still guards the keys).
      const limits = await deps.ledger.getLimits(userId).catch((error: unknown) => {
        deps.logger.warn({ err: errorName(error) }, 'user limits unavailable; request allowed');
        return null;
      });

      const settings = await deps.business.getSettings();
      const prompt = await checkPrompt(req.chat.messages, settings);
      if (prompt.status === 'refused') return emit({ type: 'error', code: 'prompt_too_long', message: prompt.message });
      const model = await deps.business.resolve(req.chat.model);

      let hold: UsageHold | null = null;
      if (limits && (limits.dailyBudgetUsd !== undefined || limits.rpm !== undefined)) {
        // Only budgeted users pay for the bound (and the reservation's round trip replaces the budget read).
        const holdUsd = limits.dailyBudgetUsd !== undefined && model ? maxCost(await servingModels(deps, model), promptTokensAtMost(req.chat.messages), req.chat.maxTokens, settings, req.chat.reasoningEffort) : undefined;
        const admitted = await deps.ledger.admit(userId, holdUsd).catch((error: unknown): Admission => {
          deps.logger.warn({ err: errorName(error) }, 'user limits unavailable; request allowed');
          return { ok: true, hold: null };
        });
        if (!admitted.ok) return emit(refusalEvent(admitted));
        hold = admitted.hold;
      }
      if (prompt.status === 'warning') {
        await emit({ type: 'warning', code: 'prompt_over_soft_limit', message: prompt.message, promptTokens: prompt.promptTokens });
      }

      const estimatedUsd = model ? estimateCost(model, prompt.promptTokens, settings) : 0;
      const { keySources, ownProviders, fallbackToSharedPool } = await userKeySources(deps, userId);

      let priced = model;
      let servedBy: ProviderId | null = null;
      let streamedBytes = 0;
      let recorded = false;
      /** Once per answer: the record (it settles the hold), or the hold given back when nothing was produced. */
      const settle = (usage: UsageRecordInput | null): void => {
        if (recorded) return;
        recorded = true;
        // Into the ledger's outbox before the event leaves (a client gone after this point
        // cannot lose the record); the store write happens off the answer's path.
        // The model and provider that served it: kept per model by the PostgreSQL ledger (issue 23).
        if (usage) deps.ledger.recordSoon(userId, { ...usage, ...(priced ? { model: priced.id } : {}), ...(servedBy ? { provider: servedBy } : {}) }, hold);
        else if (hold) deps.ledger.release(userId, hold);
      };
      /** The end of an answer without the provider's usage: bill what was produced, if anything was. */
      const settleCut = (): void => {
        if (recorded) return;
        if (servedBy === null) return settle(null);
        const usage = { inputTokens: prompt.promptTokens, outputTokens: Math.ceil(streamedBytes / ESTIMATED_BYTES_PER_TOKEN), cachedInputTokens: 0 };
        settle({ ...usage, costUsd: priced ? actualCost(priced, usage, settings, servedBy) : 0 });
      };
      // A fallback may serve: price the answer by the model that actually answered. The only
      // await of metering, and only for a fallback's start.
      const price = (event: StreamEvent): Promise<void> | undefined =>
        event.type === 'start' && model && event.provider !== model.provider
          ? deps.business.resolve(`${event.provider}/${event.model}`).then((resolved) => void (priced = resolved ?? model))
          : undefined;
      // Synchronous: a promise and an await per streamed chunk were a large share of the
      // streaming path's allocations (issue #8).
      const meter = (event: StreamEvent): StreamEvent => {
        if (event.type === 'delta') {
          streamedBytes += Buffer.byteLength(event.text, 'utf8');
          return event;
        }
        if (event.type === 'start') {
          servedBy = event.provider;
          return event;
        }
        if (event.type === 'usage') {
          const actualUsd = priced ? actualCost(priced, event.usage, settings, servedBy ?? priced.provider) : 0;
          settle({ inputTokens: event.usage.inputTokens, outputTokens: event.usage.outputTokens, costUsd: actualUsd });
          return { ...event, cost: { estimatedUsd, actualUsd } };
        }
        if (event.type === 'done' || event.type === 'error') settleCut();
        return event;
      };

      // The answer runs to its end unless the caller's signal stops it, whether or not anyone
      // still reads: an answer that completes is recorded and billed, one cut short is billed
      // for what it produced.
      try {
        return await deps.inner.run(
          {
            ...req,
            keySources,
            useSharedPool: (provider) => fallbackToSharedPool || !ownProviders.has(provider),
            // The user's weight in the shared pools' fair share (issue 22); BYOK pools have none.
            ...(limits?.weight !== undefined ? { weight: limits.weight } : {}),
          },
          (event) => {
            const pricing = price(event);
            return pricing ? pricing.then(() => emit(meter(event))) : emit(meter(event));
          },
        );
      } finally {
        // Ended without a terminal event (a reader that threw): still billed, the hold still settled.
        settleCut();
      }
    },
  };
}

/** The model and its fallbacks: any of them may serve, so a budget's bound is the dearest. */
async function servingModels(deps: MeteredChatEngineDeps, model: ResolvedModel): Promise<ResolvedModel[]> {
  if (model.fallbacks.length === 0) return [model];
  const fallbacks = await Promise.all(model.fallbacks.map((id) => deps.business.resolve(id).catch(() => null)));
  return [model, ...fallbacks.filter((m): m is ResolvedModel => m !== null)];
}

export function refusalEvent(refusal: LimitRefusal): Extract<StreamEvent, { type: 'error' }> {
  if (refusal.refused === 'rpm') return { type: 'error', code: 'rate_limited', message: 'You are sending requests too fast for your per-minute limit.', retryAfterMs: refusal.retryAfterMs };
  return refusal.heldInFlight
    ? { type: 'error', code: 'budget_exceeded', message: 'Your answers in progress may use the rest of your daily budget; retry when they finish.', retryAfterMs: refusal.retryAfterMs }
    : { type: 'error', code: 'budget_exceeded', message: 'Your daily budget is used up; it renews at midnight UTC.', retryAfterMs: refusal.retryAfterMs };
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'unknown';
}
