import type { PickAsk, PickResult, PoolDefinition, PoolStore } from './types';

/**
 * Resolves after `ms`, or at once when `signal` aborts (never rejects). Injectable so tests
 * control time instead of sleeping.
 */
export type WaitTimer = (ms: number, signal?: AbortSignal) => Promise<void>;

export const systemTimer: WaitTimer = (ms, signal) =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** How a wait in the queue ended, for the wait-time metric. */
export type WaitOutcome = 'served' | 'timeout' | 'aborted' | 'no_keys';

export interface PickWaitingOptions {
  store: PoolStore;
  pool: PoolDefinition;
  /** user, weight, queueMax. */
  ask: PickAsk;
  /** At most this long in the queue, ms (> 0). */
  waitMs: number;
  signal: AbortSignal | undefined;
  clock: () => number;
  timer: WaitTimer;
  /** Called once when a request that entered the queue leaves it. */
  onWait?: (waitedMs: number, outcome: WaitOutcome) => void;
}

/**
 * A pick that may wait for capacity (issue 22). The waiter lives in the store's queue, shared
 * by every instance, and retries when the store says the shared window frees its slot
 * (`retryAfterMs`): one timer to that instant, no polling. Past its deadline, or when the
 * client goes (the signal aborts), it leaves the queue at once.
 */
export async function pickWaiting(options: PickWaitingOptions): Promise<PickResult> {
  const { store, pool, ask, signal, clock, timer } = options;
  const startedAt = clock();
  const deadline = startedAt + options.waitMs;
  let ticket: string | undefined;
  let picked = await store.pick(pool, { ...ask, waitMs: options.waitMs });
  const end = (outcome: WaitOutcome): void => {
    if (ticket !== undefined) options.onWait?.(clock() - startedAt, outcome);
  };
  const giveUp = async (outcome: WaitOutcome, retryAfterMs: number | null): Promise<PickResult> => {
    if (ticket !== undefined) await store.leave?.(pool, ticket).catch(() => undefined); // expires by its deadline anyway
    end(outcome);
    return { ok: false, reason: 'busy', retryAfterMs };
  };
  while (true) {
    if (picked.ok) {
      end('served');
      return picked;
    }
    if (picked.reason === 'no_keys') {
      end('no_keys');
      return picked;
    }
    // Not (or no longer) queued: the queue is full. A ticket we held is gone from it already.
    if (picked.ticket === undefined) {
      if (ticket !== undefined) end('timeout');
      return picked;
    }
    ticket = picked.ticket;
    const left = deadline - clock();
    if (signal?.aborted) return giveUp('aborted', picked.retryAfterMs);
    if (left <= 0) return giveUp('timeout', picked.retryAfterMs);
    await timer(Math.max(1, Math.min(picked.retryAfterMs ?? left, left)), signal);
    if (signal?.aborted) return giveUp('aborted', picked.retryAfterMs);
    picked = await store.pick(pool, { ...ask, ticket, waitMs: Math.max(1, deadline - clock()) });
  }
}
