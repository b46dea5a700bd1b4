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
 *  - high entropy, a backstop for key shapes no rule names (e.g. Mistral's bare 32-character
 *    keys): a token (split on white space and / . , : ;) of 20+ characters drawn only from
 *    [A-Za-z0-9+=_-], not plain hex/UUID (hex has its own rule above), using at least two of
 *    upper/lower/digit, whose adjacent letters/digits switch class at least 40% of the time and
 *    whose Shannon entropy is >= 3.5 bits per character. Words switch class rarely (model ids and
 *    display names measure <= 0.35, camelCase ~0.3); random base62/base64url switches ~0.6.
 *    Measured on random strings: 97% of 20-character, 99% of 32-character and 99.8% of
 *    48-character keys are caught. Lower-case-only random strings under 40 characters pass:
 *    a known, documented gap. test/store/secretGuard.test.ts pins both sides, including every
 *    model in server/business/defaults.json.
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
const KEYLIKE_TOKEN = /^[A-Za-z0-9+=_-]+$/;
const HEX_OR_UUID = /^[0-9a-fA-F-]+$/;
const TOKEN_SEPARATORS = /[\s/.,:;]+/;

export const ENTROPY_MIN_LENGTH = 20;
export const ENTROPY_THRESHOLD_BITS = 3.5;
export const CLASS_SWITCH_THRESHOLD = 0.4;

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

/**
 * The rule a string breaks, or null when it looks harmless. `entropy: false` skips the
 * high-entropy backstop: used for map field names, which are identifiers (user ids such as
 * `user_2NNEqL2nrIRdJ194ndJqAHwEfxC`, record UUIDs) and random by design.
 */
export function secretRuleFor(value: string, options: { entropy?: boolean } = {}): string | null {
  for (const [pattern, rule] of PROVIDER_KEY_PATTERNS) if (pattern.test(value)) return rule;
  if (PEM.test(value)) return 'PEM block';
  if (JWT.test(value)) return 'JWT';
  if (LONG_HEX.test(value)) return 'long hex string';
  if (options.entropy === false) return null;
  for (const token of value.split(TOKEN_SEPARATORS)) {
    if (token.length < ENTROPY_MIN_LENGTH || !KEYLIKE_TOKEN.test(token) || HEX_OR_UUID.test(token)) continue;
    const classes = Number(/[A-Z]/.test(token)) + Number(/[a-z]/.test(token)) + Number(/[0-9]/.test(token));
    if (classes < 2) continue;
    if (classSwitchRatio(token) >= CLASS_SWITCH_THRESHOLD && shannonEntropy(token) >= ENTROPY_THRESHOLD_BITS) return 'high-entropy string';
  }
  return null;
}

function charClass(ch: string): 'upper' | 'lower' | 'digit' | null {
  if (ch >= 'A' && ch <= 'Z') return 'upper';
  if (ch >= 'a' && ch <= 'z') return 'lower';
  if (ch >= '0' && ch <= '9') return 'digit';
  return null;
}

/** Share of adjacent letter/digit pairs whose class (upper, lower, digit) differs. */
export function classSwitchRatio(token: string): number {
  let pairs = 0;
  let switches = 0;
  for (let i = 1; i < token.length; i++) {
    const a = charClass(token[i - 1]!);
    const b = charClass(token[i]!);
    if (!a || !b) continue;
    pairs++;
    if (a !== b) switches++;
  }
  return pairs === 0 ? 0 : switches / pairs;
}

/** Throws SecretGuardError naming the first field that looks secret. `where` names the store key. */
export function assertNoSecrets(where: string, value: unknown): void {
  walk(where, value, new Set());
}

/**
 * For map field names: every rule but the entropy backstop (ids are random by design). Outside
 * identifiers (user ids) reach field names only through storeIds.ts, which stores an id as itself
 * exactly when these rules pass it and in a form no rule can match otherwise, so this check never
 * refuses an identifier; it still catches a secret used as a field name by mistake. These rules
 * decide where an identifier is stored: a rule added here moves the data of the ids it matches
 * to their encoded field (new rules belong to values, which `entropy` keeps separate).
 */
export function assertNotSecretIdentifier(where: string, identifier: string): void {
  const rule = secretRuleFor(identifier, { entropy: false });
  if (rule) throw new SecretGuardError(where, rule);
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
    const rule = secretRuleFor(key, { entropy: false });
    if (rule) throw new SecretGuardError(`${path} (a field name)`, rule);
    walk(`${path}.${key}`, item, seen);
  }
}
