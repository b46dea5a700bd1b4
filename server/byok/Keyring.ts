import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { Sealed, type SealedEnvelope } from '../store/Sealed';
import { ByokError } from './ByokError';

/**
 * AES-256-GCM with the current ENCRYPTION_KEY, and ENCRYPTION_KEY_PREVIOUS kept for reading
 * records sealed before a rotation. Every envelope names the key that sealed it (`kid`: the
 * first 8 hex characters of the key's SHA-256 — 32 bits that identify, and reveal nothing
 * useful about, a 256-bit key). A fresh random 12-byte IV per seal; the caller's AAD (user id,
 * record id, provider) is authenticated, so an envelope copied to another record fails to open.
 */
export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

export class Keyring {
  readonly currentKeyId: string;
  private readonly keys = new Map<string, Buffer>();

  constructor(current: Buffer, previous?: Buffer | null) {
    if (current.length !== 32) throw new Error('ENCRYPTION_KEY must be 32 bytes');
    if (previous && previous.length !== 32) throw new Error('ENCRYPTION_KEY_PREVIOUS must be 32 bytes');
    this.currentKeyId = keyIdOf(current);
    if (previous) this.keys.set(keyIdOf(previous), previous);
    this.keys.set(this.currentKeyId, current);
  }

  seal(plaintext: string, aad: string): Sealed {
    const key = this.keys.get(this.currentKeyId)!;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return new Sealed({ v: 1, kid: this.currentKeyId, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ct: ct.toString('base64') });
  }

  /** An envelope read back from the store, wrapped again so it can be written unchanged. */
  wrap(envelope: SealedEnvelope): Sealed {
    return new Sealed(envelope);
  }

  /** Throws ByokError 'corrupt' when authentication fails, 'unknown_encryption_key' when the kid is not ours. */
  open(envelope: SealedEnvelope, aad: string): string {
    const key = this.keys.get(envelope.kid);
    if (!key) throw new ByokError('unknown_encryption_key', 'sealed under an encryption key this gateway does not have');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(envelope.iv, 'base64'), { authTagLength: 16 });
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(Buffer.from(envelope.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(envelope.ct, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new ByokError('corrupt', 'stored key failed authentication');
    }
  }
}
