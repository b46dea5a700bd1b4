import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { createContext, useContext, useState, type ReactNode } from 'react';
import { createKeyrackClient, type KeyrackClient, type TokenSource } from './createKeyrackClient';
import { trpc } from './trpc';

const KeyrackClientContext = createContext<KeyrackClient | null>(null);

export type KeyrackProviderProps = {
  children: ReactNode;
  /** Share a QueryClient with the rest of the app; by default Keyrack makes its own. */
  queryClient?: QueryClient;
} & ({ client: KeyrackClient; url?: never; getToken?: never } | { url: string; getToken: TokenSource; client?: never });

/**
 * Makes the Keyrack hooks work below it: a typed tRPC client (from `client`, or made from
 * `url` + `getToken`) and TanStack Query.
 */
export function KeyrackProvider(props: KeyrackProviderProps) {
  const [ownClient] = useState(() => props.client ?? createKeyrackClient({ url: props.url!, getToken: props.getToken! }));
  const [ownQueryClient] = useState(() => props.queryClient ?? new QueryClient({ defaultOptions: { queries: { retry: retryTransient, refetchOnWindowFocus: false } } }));
  const client = props.client ?? ownClient;
  const queryClient = props.queryClient ?? ownQueryClient;
  return (
    <KeyrackClientContext.Provider value={client}>
      <trpc.Provider client={client} queryClient={queryClient}>
        <QueryClientProvider client={queryClient}>{props.children}</QueryClientProvider>
      </trpc.Provider>
    </KeyrackClientContext.Provider>
  );
}

/** Retry what may pass on a second try (network, 5xx); a refused token or bad input will not. */
function retryTransient(failures: number, error: unknown): boolean {
  const status = (error as { data?: { httpStatus?: unknown } } | null)?.data?.httpStatus;
  return failures < 2 && !(typeof status === 'number' && status >= 400 && status < 500);
}

/** The vanilla client KeyrackProvider holds, for calls outside hooks. */
export function useKeyrackClient(): KeyrackClient {
  const client = useContext(KeyrackClientContext);
  if (!client) throw new Error('Keyrack hooks must be used inside <KeyrackProvider>');
  return client;
}
