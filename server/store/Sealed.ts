import { z } from 'zod';

/**
 * An AES-256-GCM envelope as the BYOK vault stores it. Wrapping it in this class is how a
 * ciphertext gets past the secret guard: the guard allows the type, and the constructor only
 * accepts the exact envelope shape, so a plaintext cannot be smuggled through by wrapping it.
 */
export const sealedEnvelopeSchema = z.strictObject({
  /** Envelope format version. */
  v: z.literal(1),
  /** Which encryption key sealed it: the first 8 hex characters of its SHA-256. */
  kid: z.string().regex(/^[0-9a-f]{8}$/),
  /** 12-byte IV, base64. */
  iv: z.string().regex(/^[A-Za-z0-9+/]{16}$/),
  /** 16-byte GCM tag, base64. */
  tag: z.string().regex(/^[A-Za-z0-9+/]{22}==$/),
  /** Ciphertext, base64. */
  ct: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/).max(2_000),
});
export type SealedEnvelope = z.infer<typeof sealedEnvelopeSchema>;

export class Sealed {
  readonly envelope: SealedEnvelope;
  constructor(envelope: SealedEnvelope) {
    this.envelope = sealedEnvelopeSchema.parse(envelope);
  }
  /** Stored as the plain envelope. */
  toJSON(): SealedEnvelope {
    return this.envelope;
  }
}
