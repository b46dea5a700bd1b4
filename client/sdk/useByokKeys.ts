import { toKeyrackError, type KeyrackError } from './KeyrackError';
import { trpc } from './trpc';
import type { RouterInputs, RouterOutputs } from './types';

export type ByokKeyInfo = RouterOutputs['byok']['list'][number];
export type AddByokKeyInput = RouterInputs['byok']['add'];
export type ByokTestOutput = RouterOutputs['byok']['test'];

export interface UseByokKeysResult {
  /** The caller's own keys, masked. Empty while loading. */
  keys: readonly ByokKeyInfo[];
  isLoading: boolean;
  error: KeyrackError | null;
  /** Stores a key (encrypted); the answer and the list only ever show its mask. */
  add: (input: AddByokKeyInput) => Promise<RouterOutputs['byok']['add']>;
  remove: (id: string) => Promise<void>;
  /** A cheap authenticated upstream call with the key: valid / rejected / unreachable. */
  test: (id: string) => Promise<ByokTestOutput>;
  /** Ids of keys with a test or removal in flight. */
  busyIds: ReadonlySet<string>;
  adding: boolean;
}

/** The caller's bring-your-own keys; every change refreshes the list. */
export function useByokKeys(): UseByokKeysResult {
  const utils = trpc.useUtils();
  const list = trpc.byok.list.useQuery();
  const invalidate = () => utils.byok.list.invalidate();
  const add = trpc.byok.add.useMutation({ onSuccess: invalidate });
  const remove = trpc.byok.remove.useMutation({ onSuccess: invalidate });
  const test = trpc.byok.test.useMutation({ onSettled: invalidate });
  const busyIds = new Set<string>();
  if (remove.isPending && remove.variables) busyIds.add(remove.variables.id);
  if (test.isPending && test.variables) busyIds.add(test.variables.id);
  return {
    keys: list.data ?? [],
    isLoading: list.isLoading,
    error: list.error ? toKeyrackError(list.error) : null,
    add: (input) => add.mutateAsync(input),
    remove: async (id) => {
      await remove.mutateAsync({ id });
    },
    test: (id) => test.mutateAsync({ id }),
    busyIds,
    adding: add.isPending,
  };
}
