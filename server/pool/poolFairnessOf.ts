import type { PoolQueueStatus, PoolUserShare } from '../../shared';
import type { PoolConfigInput } from './KeyPool';
import { effectiveLimit, type FairnessState, type KeyState } from './types';

/** Users shown per pool in the admin view: the most active of the window. */
const TOP_USERS = 10;

/**
 * The admin view of a pool's fair share and queue (issue 22): each active user's share of the
 * capacity (the requests limit in force, configured or learned, summed over the accounts with
 * a usable key), weighted as pick.lua weighs it.
 */
export function poolFairnessOf(
  state: FairnessState,
  config: PoolConfigInput,
  keys: readonly KeyState[],
): { users?: PoolUserShare[]; queue?: PoolQueueStatus } {
  const out: { users?: PoolUserShare[]; queue?: PoolQueueStatus } = {};
  // The capacity pick.lua shares: per account with a usable key, the requests limit in force.
  const rpmOfAccount = new Map<string, number>();
  for (const k of keys) if (k.status === 'ok') rpmOfAccount.set(k.account, effectiveLimit(config.rpm, k.learned?.requests?.limit));
  let capacity = 0;
  for (const rpm of rpmOfAccount.values()) capacity += rpm;
  if (capacity > 0) {
    const total = state.users.reduce((sum, u) => sum + u.weight, 0);
    out.users = [...state.users]
      .sort((a, b) => b.requests - a.requests || a.userId.localeCompare(b.userId))
      .slice(0, TOP_USERS)
      .map((u) => ({ userId: u.userId, weight: u.weight, requestsThisWindow: u.requests, shareRpm: total > 0 ? Math.round((capacity * u.weight * 100) / total) / 100 : 0 }));
  }
  if ((config.queueMax ?? 0) > 0) {
    out.queue = {
      length: state.queue.length,
      oldestWaitMs: state.queue.oldestJoinedAt === null ? 0 : Math.max(0, state.now - state.queue.oldestJoinedAt),
      maxLength: config.queueMax ?? 0,
      maxWaitMs: config.queueMaxWaitMs ?? 0,
    };
  }
  return out;
}
