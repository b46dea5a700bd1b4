import { TRPCError } from '@trpc/server';
import type { TRPC_ERROR_CODE_KEY } from '@trpc/server/rpc';
import type { GatewayErrorCode, StreamEvent } from '../../shared';

type ErrorEvent = Extract<StreamEvent, { type: 'error' }>;

/** Carried as a TRPCError's `cause`; the error formatter puts its code and retry time in `data`. */
export class GatewayFailure extends Error {
  override readonly name = 'GatewayFailure';
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/**
 * The tRPC code for each gateway code. Only mutations and queries throw these: inside a
 * subscription an upstream failure is an `error` event, because tRPC's SSE client reconnects
 * and re-runs the subscription on INTERNAL_SERVER_ERROR, BAD_GATEWAY, SERVICE_UNAVAILABLE and
 * GATEWAY_TIMEOUT (`retryableRpcCodes` in @trpc/server rpc/codes.ts) and a re-run would call
 * the provider again and bill twice.
 */
export const TRPC_CODE_OF: Record<GatewayErrorCode, TRPC_ERROR_CODE_KEY> = {
  rate_limited: 'TOO_MANY_REQUESTS',
  quota_exhausted: 'TOO_MANY_REQUESTS',
  no_keys: 'SERVICE_UNAVAILABLE',
  bad_request: 'BAD_REQUEST',
  upstream_error: 'BAD_GATEWAY',
  stream_interrupted: 'BAD_GATEWAY',
  prompt_too_long: 'BAD_REQUEST',
  budget_exceeded: 'TOO_MANY_REQUESTS',
  shutting_down: 'SERVICE_UNAVAILABLE',
  not_found: 'NOT_FOUND',
  internal: 'INTERNAL_SERVER_ERROR',
  store_unavailable: 'SERVICE_UNAVAILABLE',
};

export function trpcErrorOf(event: ErrorEvent): TRPCError {
  return new TRPCError({
    code: TRPC_CODE_OF[event.code],
    message: event.message,
    cause: new GatewayFailure(event.code, event.message, event.retryAfterMs),
  });
}
