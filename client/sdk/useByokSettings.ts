import { toKeyrackError, type KeyrackError } from './KeyrackError';
import { trpc } from './trpc';
import type { RouterOutputs } from './types';

export type ByokSettings = RouterOutputs['byok']['settings'];

export interface UseByokSettingsResult {
  /** Null while loading. */
  settings: ByokSettings | null;
  error: KeyrackError | null;
  saving: boolean;
  save: (next: ByokSettings) => Promise<ByokSettings>;
}

/** The caller's BYOK routing settings (fall back to the shared pool or fail). */
export function useByokSettings(): UseByokSettingsResult {
  const utils = trpc.useUtils();
  const query = trpc.byok.settings.useQuery();
  const save = trpc.byok.setSettings.useMutation({
    // The answer is the stored settings: put them in the cache instead of asking again.
    onSuccess: (stored) => utils.byok.settings.setData(undefined, stored),
  });
  return {
    settings: query.data ?? null,
    error: query.error ? toKeyrackError(query.error) : save.error ? toKeyrackError(save.error) : null,
    saving: save.isPending,
    save: (next) => save.mutateAsync(next),
  };
}
