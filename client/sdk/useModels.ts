import { trpc } from './trpc';

/** The active models with display names and prices (USD per 1M tokens), cached by TanStack Query. */
export function useModels() {
  return trpc.models.list.useQuery(undefined, { staleTime: 60_000 });
}
