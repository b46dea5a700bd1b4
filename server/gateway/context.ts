import type { IncomingMessage } from 'node:http';
import type { PoolStatus } from '../../shared';
import type { AuthUser, TokenRefusal, TokenService } from '../auth/tokens';
import { bearerToken } from '../auth/tokens';
import type { ByokKeyTester, ByokVault } from '../byok/ByokVault';
import type { BusinessConfig } from '../business/BusinessConfig';
import type { ModelCatalog } from '../business/types';
import type { UsageLedger } from '../usage/UsageLedger';
import type { ReloadReport } from '../ops/envReloader';
import type { Logger } from '../observability/logger';
import type { ChatEngine } from '../streams/ChatEngine';
import type { ChatStreams } from '../streams/ChatStreams';
import type { MeteredCalls } from './meteredCalls';

/** What the admin procedures need of the key pool (server/pool/KeyPool satisfies it). */
export interface PoolAdmin {
  status(): Promise<PoolStatus>;
  /** False when the pool has no such key. */
  setKeyEnabled(poolId: string, fingerprint: string, enabled: boolean): Promise<boolean>;
}

/** Everything the procedures use, built once by the composition root (createGateway). */
export interface GatewayDeps {
  engine: ChatEngine;
  /** Pooled calls other than chat (embeddings, messages, responses; issue 21). Absent: those endpoints answer 503. */
  calls?: MeteredCalls;
  streams: ChatStreams;
  catalog: ModelCatalog;
  pool: PoolAdmin;
  tokens: TokenService;
  logger: Logger;
  /** Business data behind byok.*, config.*, models.upsert/setActive, usage.*, users.*. */
  domain?: DomainDeps;
  /** Re-reads ENV_FILE and applies the key difference (pool.reload). */
  reload?: () => Promise<ReloadReport>;
  /** pool.watch polls the pool this often and pushes when something changed. Default 1000. */
  poolWatchIntervalMs?: number;
}

export interface DomainDeps {
  business: BusinessConfig;
  vault: ByokVault;
  ledger: UsageLedger;
  /** A cheap authenticated upstream call (list models) for byok.test. */
  testKey: ByokKeyTester;
}

export interface GatewayContext {
  deps: GatewayDeps;
  /** Null when the request carries no valid token; `authRefusal` says why. */
  user: AuthUser | null;
  authRefusal: TokenRefusal | null;
  requestId: string;
}

/**
 * Reads the bearer token for every request, subscriptions included: the SSE client sends the
 * header through the `eventsource` package's custom fetch. Never throws: procedures that need a
 * user refuse with UNAUTHORIZED themselves, so public ones (none yet) keep working.
 */
export async function createContextFor(deps: GatewayDeps, req: IncomingMessage, requestId: string): Promise<GatewayContext> {
  const verified = await deps.tokens.verify(bearerToken(req.headers.authorization));
  return verified.ok
    ? { deps, user: verified.user, authRefusal: null, requestId }
    : { deps, user: null, authRefusal: verified.reason, requestId };
}
