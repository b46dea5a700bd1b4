import { createHash } from 'node:crypto';
import type { ProviderId, StreamEvent } from '../../shared';
import type { ByokVault } from '../byok/ByokVault';
import type { BusinessConfig } from '../business/BusinessConfig';
import { checkPrompt } from '../business/checkPrompt';
import { actualCost, estimateCost } from '../business/cost';
import type { DispatchRequest } from '../dispatch/Dispatcher';
import type { KeySource } from '../dispatch/types';
import type { Logger } from '../observability/logger';
import type { AcquireResult, KeyPool } from '../pool/KeyPool';
import type { ChatEngine, ChatEngineRequest, EventSink } from '../streams/ChatEngine';
import type { UsageLedger } from '../usage/UsageLedger';

/** What the metered engine needs of the dispatcher: its run, with extra key sources. */
export interface KeyedChatEngine {
  run(req: DispatchRequest, emit: EventSink): Promise<void>;
}

export interface MeteredChatEngineDeps {
  inner: KeyedChatEngine;
  business: BusinessConfig;
  ledger: UsageLedger;
  vault: ByokVault;
  pool: Pick<KeyPool, 'acquireFrom'>;
  logger: Logger;
}

/**
 * The business rules around one chat, for tRPC and /v1 alike: the user's limits (RPM, daily
 * budget), the prompt limits (a `warning` over the soft limit, refused over the hard one, both
 * before any upstream call), the user's own keys first (BYOK), and cost: estimated before the
 * call, actual from the provider's reported usage, both in the `usage` event and in the user's
 * ledger.
 */
export function createMeteredChatEngine(deps: MeteredChatEngineDeps): ChatEngine {
  return {
    async run(req: ChatEngineRequest, emit: EventSink): Promise<void> {
      const { userId } = req;
      const limits = await deps.ledger.checkUserLimits(userId).catch((error: unknown) => {
        // Fail open: an unreachable store must not stop paying users; the pool still guards the keys.
        deps.logger.warn({ err: errorName(error) }, 'user limits unavailable; request allowed');
        return { ok: true } as const;
      });
      if (!limits.ok) {
        return emit(
          limits.refused === 'budget'
            ? { type: 'error', code: 'budget_exceeded', message: 'Your daily budget is used up; it renews at midnight UTC.', retryAfterMs: limits.retryAfterMs }
            : { type: 'error', code: 'rate_limited', message: 'You are sending requests too fast for your per-minute limit.', retryAfterMs: limits.retryAfterMs },
        );
      }

      const settings = await deps.business.getSettings();
      const prompt = await checkPrompt(req.chat.messages, settings);
      if (prompt.status === 'refused') return emit({ type: 'error', code: 'prompt_too_long', message: prompt.message });
      if (prompt.status === 'warning') {
        await emit({ type: 'warning', code: 'prompt_over_soft_limit', message: prompt.message, promptTokens: prompt.promptTokens });
      }

      const model = await deps.business.resolve(req.chat.model);
      const estimatedUsd = model ? estimateCost(model, prompt.promptTokens, settings) : 0;
      const { keySources, ownProviders, fallbackToSharedPool } = await userKeySources(deps, userId);

      let priced = model;
      let servedBy: ProviderId | null = null;
      let recorded = false;
      // A fallback may serve: price the answer by the model that actually answered. The only
      // await of metering, and only for a fallback's start.
      const price = (event: StreamEvent): Promise<void> | undefined =>
        event.type === 'start' && model && event.provider !== model.provider
          ? deps.business.resolve(`${event.provider}/${event.model}`).then((resolved) => void (priced = resolved ?? model))
          : undefined;
      // Synchronous: a promise and an await per streamed chunk were a large share of the
      // streaming path's allocations (issue #8).
      const meter = (event: StreamEvent): StreamEvent => {
        if (event.type === 'delta') return event;
        if (event.type === 'start') {
          servedBy = event.provider;
          return event;
        }
        if (event.type === 'usage') {
          const actualUsd = priced ? actualCost(priced, event.usage, settings, servedBy ?? priced.provider) : 0;
          recorded = true;
          // Into the ledger's outbox before the event leaves (a client gone after this point
          // cannot lose the record); the store write happens off the answer's path.
          deps.ledger.recordSoon(userId, { inputTokens: event.usage.inputTokens, outputTokens: event.usage.outputTokens, costUsd: actualUsd });
          return { ...event, cost: { estimatedUsd, actualUsd } };
        }
        if (event.type === 'done' && !recorded && servedBy !== null && event.finishReason !== 'aborted') {
          // An answer whose provider reported no usage still counts as a request.
          recorded = true;
          deps.ledger.recordSoon(userId, { inputTokens: 0, outputTokens: 0, costUsd: 0 });
        }
        return event;
      };

      // The answer runs to its end unless the caller's signal stops it, whether or not anyone
      // still reads: an answer that completes is recorded and billed.
      return deps.inner.run(
        {
          ...req,
          keySources,
          useSharedPool: (provider) => fallbackToSharedPool || !ownProviders.has(provider),
        },
        (event) => {
          const pricing = price(event);
          return pricing ? pricing.then(() => emit(meter(event))) : emit(meter(event));
        },
      );
    },
  };
}

/** The user's own keys as a key source per provider, each provider its own small pool with its own cooldowns. */
async function userKeySources(
  deps: MeteredChatEngineDeps,
  userId: string,
): Promise<{ keySources: KeySource[]; ownProviders: ReadonlySet<ProviderId>; fallbackToSharedPool: boolean }> {
  const { providers: ownProviders, fallbackToSharedPool } = await deps.vault.routing(userId);
  if (ownProviders.size === 0) return { keySources: [], ownProviders, fallbackToSharedPool: true };
  const poolOwner = createHash('sha256').update(userId).digest('hex').slice(0, 16);
  const source: KeySource = async (provider): Promise<AcquireResult> => {
    if (!ownProviders.has(provider)) return { ok: false, reason: 'no_keys', retryAfterMs: null };
    const secrets = await deps.vault.getSecrets(userId, provider);
    if (secrets.length === 0) return { ok: false, reason: 'no_keys', retryAfterMs: null };
    return deps.pool.acquireFrom({
      id: `byok:${poolOwner}:${provider}`,
      provider,
      strategy: 'round-robin',
      rpm: 0,
      tpm: 0,
      keys: secrets.map((s) => ({ secret: s.secret, account: null })),
    });
  };
  return { keySources: [source], ownProviders, fallbackToSharedPool };
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'unknown';
}
