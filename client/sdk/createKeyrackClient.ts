import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink, type TRPCClient } from '@trpc/client';
import { EventSource } from 'eventsource';
import { MAX_TRPC_BATCH_SIZE } from '../../shared/transport';
import type { AppRouter } from '../../server/gateway/router';

/**
 * Returns the caller's JWT, or nothing when signed out. Called before every request and every
 * (re)connect of a stream, so a refreshed token is always the one sent.
 */
export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

export interface KeyrackClientOptions {
  /** The gateway's tRPC endpoint: `http://localhost:3002/trpc`, or `/trpc` in a browser on the same origin. */
  url: string;
  getToken: TokenSource;
  /** Replaces `globalThis.fetch` (tests, instrumentation). */
  fetch?: typeof globalThis.fetch;
}

export type KeyrackClient = TRPCClient<AppRouter>;

/**
 * The typed vanilla tRPC client for a Keyrack gateway: queries and mutations batched over HTTP,
 * subscriptions (chat streams, pool updates) over SSE.
 */
export function createKeyrackClient(options: KeyrackClientOptions): KeyrackClient {
  const url = absoluteUrl(options.url);
  const baseFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));

  const authorization = async (): Promise<Record<string, string>> => {
    const token = await options.getToken();
    return token ? { authorization: `Bearer ${token}` } : {};
  };

  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url,
          // The browser's EventSource cannot send headers. The `eventsource` package can, through
          // its `fetch`; it also reconnects by itself, so the token is read inside that fetch:
          // every reconnect, whoever starts it, carries the current token.
          EventSource,
          eventSourceOptions: () => ({
            fetch: async (input, init) => {
              const headers = new Headers(init.headers as HeadersInit | undefined);
              for (const [name, value] of Object.entries(await authorization())) headers.set(name, value);
              return baseFetch(input, { ...init, headers } as RequestInit);
            },
          }),
        }),
        // The gateway refuses larger batches (MAX_TRPC_BATCH_SIZE); more calls at once go as several requests.
        false: httpBatchLink({ url, headers: authorization, fetch: baseFetch, maxItems: MAX_TRPC_BATCH_SIZE }),
      }),
    ],
  });
}

/** EventSource needs an absolute URL; a browser app naturally writes `/trpc`. */
function absoluteUrl(url: string): string {
  if (/^https?:\/\//i.test(url)) return url.replace(/\/+$/, '');
  const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
  if (!origin) throw new TypeError(`Keyrack: url must be absolute outside a browser (got "${url}")`);
  return new URL(url, origin).toString().replace(/\/+$/, '');
}
