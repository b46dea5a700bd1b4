import { Sealed } from './Sealed';

/**
 * The store holds business data and nothing secret (see the customer design: "secrets should
 * never be in queryable storage"). Every write passes through `assertNoSecrets`, which refuses
 * anything shaped like a credential. The one exception is a `Sealed` value: an AES-GCM envelope
 * made by the BYOK vault, allowed explicitly by its type rather than by loosening a rule.
 *
 * Rules, each applied to every string (and every object key) in the document, split on
 * white space:
 *  - provider key shapes: `sk-…` (OpenAI, Anthropic `sk-ant-`, DeepSeek, Kimi, `sk-proj-`…),
 *    `AIza…` (Google), `gsk_…` (Groq), `xai-…`, `pplx-…`, `Bearer …`;
 *  - JWTs: three base64url parts, the first a JSON header (`eyJ…`);
 *  - PEM blocks (`-----BEGIN …-----`);
 *  - a hex run of 40+ characters (raw key material such as a hex ENCRYPTION_KEY);
 *  - high entropy: a token of 20+ characters drawn only from base64/base64url/hex characters,
 *    mixing letters and digits, whose Shannon entropy is >= 4.0 bits per character. Random
 *    base62 of that length measures ~4.2-4.9; model ids, display names and dates measure well
 *    under 4.0 (they repeat letters and use few digits) — test/store/secretGuard.test.ts pins both
 *    sides, including every model in the defaults file.
 *
 * Errors name the field path, never the value.
 */

export class SecretGuardError extends Error {
  override readonly name = 'SecretGuardError';
  constructor(
    /** Where the value was going: store key plus the path inside the document, e.g. `business:config.settings.label`. */
    readonly field: string,
    readonly rule: string,
  ) {
    super(`refusing to store ${field}: it looks like a secret (${rule}); secrets belong in the environment or the BYOK vault`);
  }
}

const PROVIDER_KEY_PATTERNS: readonly [RegExp, string][] = [
  [/(?:^|[^A-Za-z0-9])sk-[A-Za-z0-9_-]{12,}/, 'provider key (sk-…)'],
  [/AIza[0-9A-Za-z_-]{20,}/, 'Google API key'],
  [/gsk_[A-Za-z0-9]{16,}/, 'Groq API key'],
  [/xai-[A-Za-z0-9]{16,}/, 'xAI API key'],
  [/pplx-[A-Za-z0-9]{16,}/, 'Perplexity API key'],
  [/\bBearer\s+\S{12,}/i, 'bearer token'],
];
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/;
const PEM = /-----BEGIN [A-Z0-9 ]+-----/;
const LONG_HEX = /[0-9a-fA-F]{40,}/;
const KEYLIKE_TOKEN = /^[A-Za-z0-9+/=_-]{20,}$/;

export const ENTROPY_MIN_LENGTH = 20;
export const ENTROPY_THRESHOLD_BITS = 4.0;

/** Shannon entropy of the string's character distribution, in bits per character. */
export function shannonEntropy(value: string): number {
  const counts = new Map<string, number>();
  for (const ch of value) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bits = 0;
  for (const count of counts.values()) {
    const p = count / value.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** The rule a string breaks, or null when it looks harmless. */
export function secretRuleFor(value: string): string | null {
  for (const [pattern, rule] of PROVIDER_KEY_PATTERNS) if (pattern.test(value)) return rule;
  if (PEM.test(value)) return 'PEM block';
  if (JWT.test(value)) return 'JWT';
  if (LONG_HEX.test(value)) return 'long hex string';
  for (const token of value.split(/\s+/)) {
    if (token.length < ENTROPY_MIN_LENGTH || !KEYLIKE_TOKEN.test(token)) continue;
    if (!/[0-9]/.test(token) || !/[A-Za-z]/.test(token)) continue;
    if (shannonEntropy(token) >= ENTROPY_THRESHOLD_BITS) return 'high-entropy string';
  }
  return null;
}

/** Throws SecretGuardError naming the first field that looks secret. `where` names the store key. */
export function assertNoSecrets(where: string, value: unknown): void {
  walk(where, value, new Set());
}

function walk(path: string, value: unknown, seen: Set<object>): void {
  if (typeof value === 'string') {
    const rule = secretRuleFor(value);
    if (rule) throw new SecretGuardError(path, rule);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (value instanceof Sealed) return; // the vault's ciphertext: expected, and validated when sealed
  if (seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((item, i) => walk(`${path}[${i}]`, item, seen));
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    const rule = secretRuleFor(key);
    if (rule) throw new SecretGuardError(`${path} (a field name)`, rule);
    walk(`${path}.${key}`, item, seen);
  }
}
