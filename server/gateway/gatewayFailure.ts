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

/**
 * When a 429 names no time of its own (a provider's quota error rarely does): the pool's default
 * cooldown for an exhausted key (KeyPool quotaCooldownMs, 1 hour), and for a rate limit the
 * shortest wait worth a retry. A daily budget always names its renewal (meteredChatEngine).
 */
const RETRY_AFTER_FALLBACK_MS: Partial<Record<GatewayErrorCode, number>> = {
  rate_limited: 1_000,
  quota_exhausted: 3_600_000,
  budget_exceeded: 3_600_000,
};

/**
 * How long the caller should wait before trying again, for every error the gateway answers with
 * 429 (issue 24.11: a quota_exhausted 429 carried no Retry-After); undefined for the others
 * unless the event names a time.
 */
export function retryAfterMsOf(event: Pick<ErrorEvent, 'code' | 'retryAfterMs'>): number | undefined {
  return event.retryAfterMs ?? RETRY_AFTER_FALLBACK_MS[event.code];
}

/** `retry-after` in whole seconds (at least 1, RFC 9110) and OpenAI's `retry-after-ms`. */
export function retryAfterHeaders(retryAfterMs: number | undefined): Record<string, string> {
  if (retryAfterMs === undefined) return {};
  return { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))), 'retry-after-ms': String(Math.max(0, Math.ceil(retryAfterMs))) };
}

/** The retry headers of a failed tRPC call, read from its GatewayFailure (tRPC's responseMeta, the chat.start fast path). */
export function retryAfterHeadersOfErrors(errors: readonly TRPCError[]): Record<string, string> {
  for (const error of errors) {
    if (error.cause instanceof GatewayFailure && error.cause.retryAfterMs !== undefined) return retryAfterHeaders(error.cause.retryAfterMs);
  }
  return {};
}

export function trpcErrorOf(event: ErrorEvent): TRPCError {
  const retryAfterMs = retryAfterMsOf(event);
  return new TRPCError({
    code: TRPC_CODE_OF[event.code],
    message: event.message,
    cause: new GatewayFailure(event.code, event.message, retryAfterMs),
  });
}
