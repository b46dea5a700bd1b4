import { useState } from 'react';
import type { PoolStatus } from '../../shared';
import { toKeyrackError, type KeyrackError } from './KeyrackError';
import { trpc } from './trpc';
import type { RouterInputs } from './types';

export interface UsePoolStatusOptions {
  /** Default true; false closes the live stream (e.g. for a user who is not an admin). */
  enabled?: boolean;
  /** Called with every snapshot the gateway pushes (to build history, charts...). */
  onUpdate?: (status: PoolStatus) => void;
}

export interface UsePoolStatusResult {
  /** The latest snapshot; undefined until the first arrives. */
  status: PoolStatus | undefined;
  /** True while the live stream is connected. */
  live: boolean;
  error: KeyrackError | null;
  /** Takes a key out of rotation or puts it back; the next pushed snapshot shows the change. */
  setKeyEnabled: (input: RouterInputs['pool']['setKeyEnabled']) => Promise<void>;
}

/** The key pool, live (admin only): one snapshot on connect, then one whenever it changes. */
export function usePoolStatus(options: UsePoolStatusOptions = {}): UsePoolStatusResult {
  const [status, setStatus] = useState<PoolStatus>();
  const subscription = trpc.pool.watch.useSubscription(undefined, {
    enabled: options.enabled ?? true,
    onData: (next) => {
      setStatus(next);
      options.onUpdate?.(next);
    },
  });
  const mutation = trpc.pool.setKeyEnabled.useMutation();
  return {
    status,
    live: subscription.status === 'pending',
    error: subscription.error ? toKeyrackError(subscription.error) : null,
    setKeyEnabled: async (input) => {
      await mutation.mutateAsync(input);
    },
  };
}
