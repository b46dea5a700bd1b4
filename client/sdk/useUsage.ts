import { trpc } from './trpc';
import type { RouterInputs, RouterOutputs } from './types';

export type UsageRangeInput = RouterInputs['usage']['mine'];
export type MyUsage = RouterOutputs['usage']['mine'];

/**
 * The caller's own usage (requests, tokens, cost in USD) per UTC day, over `from`..`to`
 * (both default to today). Refreshed every 30 s; invalidate `usage.mine` to refresh sooner.
 */
export function useUsage(input?: UsageRangeInput) {
  return trpc.usage.mine.useQuery(input, { refetchInterval: 30_000 });
}
