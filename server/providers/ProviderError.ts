import type { StatedLimits } from './http/rateLimitHeaders';

/**
 * How an upstream failure should be handled, which is all the dispatcher and the key pool need:
 * - rate_limited: this account is over its rate window; another account may serve now.
 * - quota_exhausted: this account is out of money or daily quota; retrying it is pointless for long.
 * - rejected: the key itself is bad (revoked, wrong, lacking permission); take it out of rotation.
 * - transient: not the key's fault (5xx, overload, network, timeout, cut stream); another try may work.
 * - bad_request: the caller's fault (unknown model, invalid parameters); never retried.
 */
export type ProviderErrorKind = 'rate_limited' | 'quota_exhausted' | 'rejected' | 'transient' | 'bad_request';

export interface ProviderErrorInit {
  kind: ProviderErrorKind;
  message: string;
  status?: number;
  retryAfterMs?: number;
  /**
   * The provider's own error code or type (`insufficient_quota`, `overloaded_error`,
   * `API_KEY_INVALID`), as upstreamCode() keeps it: a plain identifier, never the key.
   */
  providerCode?: string;
  /** The request field a bad_request names (upstreamParam(): a plain field path, never the key). */
  param?: string;
  /** The rate windows the error answer stated (headers, or Gemini's QuotaFailure): issue 22. */
  limits?: StatedLimits;
  cause?: unknown;
}

const MARKER = Symbol.for('keyrack.ProviderError');

/**
 * The one error every adapter throws. Its message (for logs, never for clients) has been scrubbed
 * of the key.
 */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  readonly kind: ProviderErrorKind;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly providerCode?: string;
  readonly param?: string;
  readonly limits?: StatedLimits;
  private readonly [MARKER] = true;

  constructor(init: ProviderErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.kind = init.kind;
    if (init.status !== undefined) this.status = init.status;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
    if (init.providerCode !== undefined) this.providerCode = init.providerCode;
    if (init.param !== undefined) this.param = init.param;
    if (init.limits !== undefined) this.limits = init.limits;
  }

  /** Works across module copies (instanceof does not). */
  static isInstance(value: unknown): value is ProviderError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }
}
