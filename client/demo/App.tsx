import { MutationCache, QueryCache, QueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { KeyrackProvider } from '../sdk';
import { AdminPage } from './admin/AdminPage';
import { ByokPage } from './byok/ByokPage';
import { ChatPage } from './chat/ChatPage';
import { loadSession, saveSession, type DemoSession } from './session/DemoSession';
import { LoginScreen } from './session/LoginScreen';
import { Shell, type Page } from './ui/Shell';

function pageFromHash(): Page {
  const page = window.location.hash.replace(/^#\/?/, '');
  return page === 'admin' || page === 'byok' ? page : 'chat';
}

export function App() {
  const [session, setSession] = useState<DemoSession | null>(loadSession);
  const [page, setPage] = useState<Page>(pageFromHash);
  const tokenRef = useRef(session?.token ?? null);
  tokenRef.current = session?.token ?? null;

  useEffect(() => {
    const onHash = () => setPage(pageFromHash());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const signIn = useCallback((next: DemoSession) => {
    saveSession(next);
    setSession(next);
  }, []);
  const signOut = useCallback(() => {
    saveSession(null);
    setSession(null);
  }, []);
  const getToken = useCallback(() => tokenRef.current, []);
  // One cache per session; an expired or revoked token sends the user back to the login screen.
  const queryClient = useMemo(() => makeQueryClient(signOut), [session?.token, signOut]);

  if (!session) return <LoginScreen onSignedIn={signIn} />;
  const visible: Page = page === 'admin' && session.role !== 'admin' ? 'chat' : page;

  return (
    // A new session gets a fresh client and cache: nothing of the previous user leaks across.
    <KeyrackProvider key={session.token} url="/trpc" getToken={getToken} queryClient={queryClient}>
      <Shell session={session} page={visible} onSignOut={signOut}>
        {visible === 'chat' && <ChatPage />}
        {visible === 'admin' && <AdminPage />}
        {visible === 'byok' && <ByokPage />}
      </Shell>
    </KeyrackProvider>
  );
}

function makeQueryClient(signOut: () => void): QueryClient {
  const onError = (error: unknown) => {
    if ((error as { data?: { httpStatus?: number } }).data?.httpStatus === 401) signOut();
  };
  return new QueryClient({
    queryCache: new QueryCache({ onError }),
    mutationCache: new MutationCache({ onError }),
    defaultOptions: {
      queries: {
        refetchOnWindowFocus: false,
        retry: (failures, error) => {
          const status = (error as { data?: { httpStatus?: number } }).data?.httpStatus;
          return failures < 2 && !(status !== undefined && status >= 400 && status < 500);
        },
      },
    },
  });
}
