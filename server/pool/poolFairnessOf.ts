import type { PoolQueueStatus, PoolUserShare } from '../../shared';
import type { PoolConfigInput } from './KeyPool';
import type { FairnessState, KeyState } from './types';

/** Users shown per pool in the admin view: the most active of the window. */
const TOP_USERS = 10;

/**
 * The admin view of a pool's fair share and queue (issue 22): each active user's share of the
 * capacity (rpm times the accounts with a usable key), weighted as pick.lua weighs it.
 */
export function poolFairnessOf(
  state: FairnessState,
  config: PoolConfigInput,
  keys: readonly KeyState[],
): { users?: PoolUserShare[]; queue?: PoolQueueStatus } {
  const out: { users?: PoolUserShare[]; queue?: PoolQueueStatus } = {};
  if (config.rpm > 0) {
    const usable = new Set(keys.filter((k) => k.status === 'ok').map((k) => k.account));
    const capacity = config.rpm * usable.size;
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
