import { TRPCClientError } from '@trpc/client';
import type { GatewayErrorCode } from '../../shared';

/** What went wrong, in terms a UI can act on: the gateway's codes plus the transport's own. */
export type KeyrackErrorCode =
  | GatewayErrorCode
  | 'unauthorized'
  | 'forbidden'
  | 'network'
  | 'unknown';

const marker = Symbol.for('keyrack.error');

/** The one error type the SDK hands to callers. */
export class KeyrackError extends Error {
  override readonly name = 'KeyrackError';
  readonly [marker] = true;
  constructor(
    readonly code: KeyrackErrorCode,
    message: string,
    /** When every key is busy: how long until one is expected back. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Works across bundles and realms, where `instanceof` does not. */
  static isInstance(value: unknown): value is KeyrackError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[marker] === true;
  }
}

const TRPC_CODE_TO_KEYRACK: Record<string, KeyrackErrorCode> = {
  TOO_MANY_REQUESTS: 'rate_limited',
  BAD_REQUEST: 'bad_request',
  PARSE_ERROR: 'bad_request',
  UNAUTHORIZED: 'unauthorized',
  FORBIDDEN: 'forbidden',
  NOT_FOUND: 'not_found',
  PAYLOAD_TOO_LARGE: 'prompt_too_long',
  SERVICE_UNAVAILABLE: 'no_keys',
  BAD_GATEWAY: 'upstream_error',
  GATEWAY_TIMEOUT: 'upstream_error',
  PRECONDITION_FAILED: 'budget_exceeded',
  INTERNAL_SERVER_ERROR: 'internal',
};

/** Turns anything thrown by the tRPC client (or the SDK) into a KeyrackError, keeping `cause`. */
export function toKeyrackError(error: unknown): KeyrackError {
  if (KeyrackError.isInstance(error)) return error;
  if (error instanceof TRPCClientError) {
    const data = (error.data ?? {}) as Record<string, unknown>;
    const gatewayCode = typeof data.gatewayCode === 'string' ? (data.gatewayCode as KeyrackErrorCode) : undefined;
    const trpcCode = typeof data.code === 'string' ? data.code : undefined;
    const retryAfterMs = numberOrUndefined(data.retryAfterMs);
    const code = gatewayCode ?? (trpcCode ? TRPC_CODE_TO_KEYRACK[trpcCode] : undefined) ?? (trpcCode ? 'unknown' : 'network');
    return new KeyrackError(code, error.message, retryAfterMs, { cause: error });
  }
  if (error instanceof Error) {
    // fetch() rejects with a TypeError when the network fails.
    const network = error.name === 'AbortError' || error instanceof TypeError;
    return new KeyrackError(network ? 'network' : 'unknown', error.message, undefined, { cause: error });
  }
  return new KeyrackError('unknown', String(error));
}

function numberOrUndefined(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}
