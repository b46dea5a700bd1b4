/**
 * Tells whether a text holds one of the secrets it was built from, in any encoding an echo has
 * been seen in: as is, spaced out or joined with zero-width characters, fullwidth, percent- or
 * HTML-entity-encoded, `\u` escaped, base64 or hex. A blocklist of key shapes (scrubSecrets)
 * misses all of those (issue 24.5: 32 of 216 echoing error bodies carried the whole key past
 * it); comparing against the actual keys does not, whatever shape they have.
 *
 * Both sides are brought to one canonical form first: NFKC (fullwidth and other compatibility
 * forms become ASCII), lower case, letters and digits only (spaces, separators, zero-width and
 * other format characters, punctuation all go). A text leaks a secret when its canonical form,
 * or that of one of its decodings, holds the whole canonical secret or any run of
 * `minFragment` characters of it.
 *
 * Meant for the error paths (upstream error bodies, log fields), not per chunk: it decodes the
 * text several ways and looks at every window of it.
 */
export class SecretMatcher {
  private readonly fragments = new Map<number, Set<string>>();
  private readonly secrets: string[];

  constructor(secrets: Iterable<string>) {
    // A secret too short to match on its own is left out: it would match ordinary words.
    this.secrets = [...new Set([...secrets].map(canonical))].filter((s) => s.length >= MIN_SECRET);
  }

  get empty(): boolean {
    return this.secrets.length === 0;
  }

  /** Whether `text` holds a secret, or `minFragment` (default 16) canonical characters of one, in any encoding above. */
  leaks(text: string, minFragment = DEFAULT_FRAGMENT): boolean {
    if (this.secrets.length === 0 || text.length === 0) return false;
    const windows = this.windowsOf(minFragment);
    for (const form of canonicalForms(text)) {
      for (const secret of this.secrets) if (secret.length < minFragment && form.includes(secret)) return true;
      for (let i = 0; i + minFragment <= form.length; i += 1) if (windows.has(form.slice(i, i + minFragment))) return true;
    }
    return false;
  }

  /** `text`, or `replacement` when it leaks a secret (the whole field: an encoded echo has no clean edges to cut at). */
  scrub(text: string, replacement = ECHO_REDACTED, minFragment = DEFAULT_FRAGMENT): string {
    return this.leaks(text, minFragment) ? replacement : text;
  }

  private windowsOf(size: number): Set<string> {
    let set = this.fragments.get(size);
    if (!set) {
      set = new Set();
      for (const secret of this.secrets) for (let i = 0; i + size <= secret.length; i += 1) set.add(secret.slice(i, i + size));
      this.fragments.set(size, set);
    }
    return set;
  }
}

/** What a field that echoed a secret is replaced with. */
export const ECHO_REDACTED = '[redacted: echoed a secret]';

const MIN_SECRET = 8;
const DEFAULT_FRAGMENT = 16;
/** Longer texts are looked at up to here: an error field past 64 KiB is cut anyway (readErrorBody). */
const MAX_TEXT = 64 * 1024;

/** NFKC, lower case, ASCII letters and digits only. */
export function canonical(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** The canonical forms of a text and of what it decodes to. */
function canonicalForms(text: string): string[] {
  const raw = text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) : text;
  const texts = new Set<string>([raw]);
  // Escapes and entities first, then percent-encoding, a few rounds (double encoding).
  let decoded = raw;
  for (let round = 0; round < 3; round += 1) {
    const next = percentDecode(unescapeEntities(decoded));
    if (next === decoded) break;
    texts.add(next);
    decoded = next;
  }
  // Binary-to-text encodings, looked for with spaces and invisible characters taken out.
  for (const t of [...texts]) {
    const compact = t.normalize('NFKC').replace(INVISIBLE_OR_SPACE, '');
    for (const run of compact.match(BASE64_RUN) ?? []) {
      for (let offset = 0; offset < 4 && run.length - offset >= 16; offset += 1) texts.add(Buffer.from(run.slice(offset), 'base64').toString('latin1'));
    }
    for (const run of compact.match(HEX_RUN) ?? []) {
      for (let offset = 0; offset < 2; offset += 1) texts.add(Buffer.from(run.slice(offset), 'hex').toString('latin1'));
    }
  }
  return [...new Set([...texts].map(canonical))];
}

/** White space, separators and format characters (zero-width space, joiners, BOM, soft hyphen...). */
const INVISIBLE_OR_SPACE = /[\s\p{Z}\p{Cf}]/gu;
/** Standard and URL-safe base64 (Buffer reads both). */
const BASE64_RUN = /[A-Za-z0-9+/_-]{16,}={0,2}/g;
const HEX_RUN = /(?:[0-9a-fA-F]{2}){8,}/g;

/** `%XX` sequences to the bytes they stand for (UTF-8), leaving malformed ones as they are. */
function percentDecode(text: string): string {
  if (!text.includes('%')) return text;
  return text.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return Buffer.from(run.replace(/%/g, ''), 'hex').toString('latin1');
    }
  });
}

/** `&#115;`, `&#x73;`, `\u0073`, `\x73`, `\u{73}` to the characters they stand for. */
function unescapeEntities(text: string): string {
  if (!/[&\\]/.test(text)) return text;
  return text
    .replace(/&#x([0-9a-fA-F]{1,6});?/g, (_, hex: string) => fromCode(parseInt(hex, 16)))
    .replace(/&#([0-9]{1,7});?/g, (_, dec: string) => fromCode(parseInt(dec, 10)))
    .replace(/\\u\{([0-9a-fA-F]{1,6})\}|\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})/g, (_, a?: string, b?: string, c?: string) => fromCode(parseInt(a ?? b ?? c ?? '0', 16)));
}

function fromCode(code: number): string {
  return code <= 0x10ffff ? String.fromCodePoint(code) : '';
}
