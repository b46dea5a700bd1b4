import { TRPCError } from '@trpc/server';
import { z } from 'zod';
import { isStoreFailure, STORE_RETRY_AFTER_MS, STORE_UNAVAILABLE_MESSAGE } from '../../ops/storeFailure';
import type { DomainDeps, GatewayContext } from '../context';
import { GatewayFailure } from '../gatewayFailure';

/** The business-data services, or a clear error when this gateway was built without them. */
export function domainOf(ctx: GatewayContext): DomainDeps {
  if (!ctx.deps.domain) throw new TRPCError({ code: 'NOT_IMPLEMENTED', message: 'this gateway has no business store' });
  return ctx.deps.domain;
}

/**
 * Turns the domain's typed errors (ByokError, BusinessConfigError, UsageError, the store's secret
 * guard, a domain's own zod parse) into tRPC codes. Their messages name fields, never values, so
 * they pass through as they are. Anything else stays an unexpected failure (500, generic message).
 */
export function toTRPCError(error: unknown): unknown {
  if (error instanceof TRPCError || !(error instanceof Error)) return error;
  // The cause stays the ZodError, so the error formatter adds its issues as for input validation.
  if (error instanceof z.ZodError) return new TRPCError({ code: 'BAD_REQUEST', message: 'invalid input', cause: error });
  const code = (error as { code?: unknown }).code;
  if (code === 'not_found') return new TRPCError({ code: 'NOT_FOUND', message: error.message, cause: error });
  if (code === 'invalid' || code === 'invalid_input' || code === 'duplicate' || code === 'limit_reached' || error.name === 'SecretGuardError') {
    return new TRPCError({ code: 'BAD_REQUEST', message: error.message, cause: error });
  }
  if (code === 'corrupt') return new TRPCError({ code: 'CONFLICT', message: error.message, cause: error });
  if (code === 'not_configured') return new TRPCError({ code: 'PRECONDITION_FAILED', message: error.message, cause: error });
  // Redis not answering (issue 24.8): a 503 naming the store, with when to retry, not a 500.
  if (isStoreFailure(error)) {
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: STORE_UNAVAILABLE_MESSAGE, cause: new GatewayFailure('store_unavailable', STORE_UNAVAILABLE_MESSAGE, STORE_RETRY_AFTER_MS) });
  }
  return error;
}

/** Runs a domain call, mapping its typed errors. */
export async function domainCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw toTRPCError(error);
  }
}
