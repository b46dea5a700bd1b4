/**
 * Why a BYOK operation failed. `not_found` also covers "belongs to another user": a caller
 * cannot tell someone else's key from no key. Messages never contain a key.
 */
export type ByokErrorCode =
  | 'not_found'
  | 'invalid_input'
  | 'duplicate'
  | 'limit_reached'
  /** The ciphertext failed authentication (tampered, truncated, or bound to another user/record). */
  | 'corrupt'
  /** Sealed under an encryption key this process does not have (ENCRYPTION_KEY changed without ENCRYPTION_KEY_PREVIOUS). */
  | 'unknown_encryption_key'
  /** BYOK is off: the gateway has no ENCRYPTION_KEY to seal keys with. */
  | 'not_configured';

export class ByokError extends Error {
  override readonly name = 'ByokError';
  constructor(
    readonly code: ByokErrorCode,
    message: string,
  ) {
    super(message);
  }
  static isInstance(value: unknown): value is ByokError {
    return value instanceof Error && value.name === 'ByokError';
  }
}
