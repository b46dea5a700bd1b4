/**
 * Failures of the shared store (Redis), told apart from everything else so that a request the
 * store could not serve is blamed on the store (503 `store_unavailable`, Retry-After), never on
 * the provider (issue 24.8).
 */

/** A command refused at once because its connection is known not to answer (see createGatewayRedis). */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  readonly code = 'store_unavailable';
  constructor(message = 'the shared store (Redis) is not answering') {
    super(message);
  }
}

/** How long a client should wait before retrying a request the store could not serve. */
export const STORE_RETRY_AFTER_MS = 2_000;

/** What the client reads: the store is at fault, and retrying soon is the remedy. */
export const STORE_UNAVAILABLE_MESSAGE = 'the gateway\'s shared store (Redis) is not answering; retry shortly';

/**
 * ioredis's own messages for a command that never got its reply: timed out, refused while
 * disconnected, flushed from the offline queue, connection closed; and a Cluster's (issue 22):
 * not ready yet, no node reachable, slots being moved or the cluster down.
 */
const IOREDIS_UNAVAILABLE =
  /^(Command timed out|Stream isn't writeable|Connection is closed|Reached the max retries per request limit|Cluster isn't ready|None of startup nodes is available|Failed to refresh slots cache|Too many Cluster redirections|CLUSTERDOWN|TRYAGAIN)/;

/** True for an error that means "Redis did not answer", as opposed to a bug or a bad input. */
export function isStoreFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof StoreUnavailableError || error.name === 'MaxRetriesPerRequestError') return true;
  return IOREDIS_UNAVAILABLE.test(error.message);
}
