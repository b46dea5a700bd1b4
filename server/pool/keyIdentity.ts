import { createHash } from 'node:crypto';

/**
 * A short, stable, one-way name for a key. State, logs and displays use it; the secret itself
 * stays in process memory. 64 bits of SHA-256 is plenty to tell a pool's keys apart and says
 * nothing usable about a high-entropy key.
 */
export function fingerprintOf(secret: string): string {
  return createHash('sha256').update('keyrack-key:').update(secret).digest('hex').slice(0, 16);
}

/**
 * What a person sees: the key's family prefix and its last four characters (`sk-…a1b2`),
 * the way provider dashboards show keys. Short keys show less so a mask never reveals most of one.
 */
export function maskOf(secret: string): string {
  if (secret.length < 12) return '…' + secret.slice(-2);
  const dash = secret.indexOf('-');
  const prefix = dash > 0 && dash < 4 ? secret.slice(0, dash + 1) : secret.slice(0, 3);
  return `${prefix}…${secret.slice(-4)}`;
}
