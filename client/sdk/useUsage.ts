import { trpc } from './trpc';
import type { RouterInputs } from './types';

/** The caller's own usage (requests, tokens, cost) per day; refreshed every 30 s. */
export function useUsage(input?: RouterInputs['usage']['mine']) {
  return trpc.usage.mine.useQuery(input, { refetchInterval: 30_000 });
}
