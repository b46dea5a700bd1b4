import { secretRuleFor } from './secretGuard';

/**
 * How an identifier from outside (a user id: any printable text up to 200 characters, such as
 * an OIDC pairwise subject or a hashed id, often 40 or 64 hex characters) appears where the
 * store could mistake it for a secret: a map field name, a counter field, a store key, a change
 * notification. Issue 24.10: a 40/64-hex `sub` tripped the secret guard on field names, so that
 * user was never billed, escaped their limits and had BYOK keys outside the rotation index.
 *
 * The stored form is the id itself when the guard would take it as it is, which is every id the
 * store could hold before this module existed (so no data moves, and instances of the previous
 * version still read and write the same fields); otherwise, and for every id that begins with
 * the marker `~`, it is `~` followed by the id's UTF-8 bytes in lower-case hex, in groups of 16
 * separated by `.` (`~3031323334353637.3839...`). That form can never look like a secret:
 * every rule of the guard needs a character it does not have (`-`, `_`, upper case, white space,
 * `g`-`z`), a run of 40 hex characters (its runs are at most 16), or a token of 20 characters or
 * more (its tokens, split on `.`, are at most 17). The two forms never collide: a plain id never
 * begins with `~`, and the hex form is decoded only when it is exactly what `encodeId` makes.
 *
 * Where the stored form persists (fields and keys) the choice uses the field-name rules only,
 * which are fixed for that reason (see secretGuard.ts); change notifications are not kept, so
 * they use every rule, the same ones `publish` applies. Decoding is the same for both.
 */

const MARKER = '~';
const GROUP = 16;
const HEX_FORM = /^~[0-9a-f]+(?:\.[0-9a-f]+)*$/;

export type StoreIdUse = 'field' | 'message';

/** The id as it is stored in a field name or key (`field`), or sent in a change notification (`message`). */
export function encodeId(id: string, use: StoreIdUse = 'field'): string {
  if (use === 'message') return isPlain(id, true) ? id : hexFormOf(id);
  // On every request's path (a user's counters and window): ~1 µs of rule checks, remembered.
  let stored = fieldForms.get(id);
  if (stored === undefined) {
    if (fieldForms.size >= MAX_REMEMBERED) fieldForms.clear();
    fieldForms.set(id, (stored = isPlain(id, false) ? id : hexFormOf(id)));
  }
  return stored;
}
const fieldForms = new Map<string, string>();
const MAX_REMEMBERED = 10_000;

function isPlain(id: string, entropy: boolean): boolean {
  return !id.startsWith(MARKER) && secretRuleFor(id, { entropy }) === null;
}

/** The id an `encodeId` result stands for; any other text (an id stored before the hex form existed) stands for itself. */
export function decodeId(stored: string): string {
  if (!stored.startsWith(MARKER) || !HEX_FORM.test(stored)) return stored;
  const hex = stored.slice(1).replaceAll('.', '');
  if (hex.length % 2 !== 0) return stored;
  const id = Buffer.from(hex, 'hex').toString('utf8');
  // Only the exact form encodeId makes (for either use): text that is not, such as the hex of
  // invalid UTF-8 or of an id always sent as itself, is an id stored before the hex form existed.
  return hexFormOf(id) === stored && encodeId(id, 'message') !== id ? id : stored;
}

function hexFormOf(id: string): string {
  const hex = Buffer.from(id, 'utf8').toString('hex');
  const groups: string[] = [];
  for (let i = 0; i < hex.length; i += GROUP) groups.push(hex.slice(i, i + GROUP));
  return MARKER + groups.join('.');
}
