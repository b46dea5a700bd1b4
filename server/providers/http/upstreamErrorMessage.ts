import { SecretMatcher } from '../../observability/SecretMatcher';
import { scrubSecrets } from './scrubSecrets';

const MAX_MESSAGE = 300;

/**
 * `openai 429: Rate limit reached ...`, for the logs only (clients get a fixed message per
 * gateway code, see server/dispatch/clientMessage.ts). Key shapes are cut out; a message that
 * still holds the key in any encoding (spaced, percent-encoded, fullwidth, base64...) is
 * replaced whole, since an encoded echo has no clean edges to cut at (issue 24.5).
 */
export function upstreamErrorMessage(provider: string, status: number | undefined, message: string | null | undefined, apiKey: string): string {
  const text = scrubUpstreamText((message ?? '').replace(/\s+/g, ' ').trim(), apiKey);
  const short = text.length > MAX_MESSAGE ? text.slice(0, MAX_MESSAGE) + '…' : text;
  const where = status === undefined ? `${provider} stream error` : `${provider} ${status}`;
  return short ? `${where}: ${short}` : where;
}

/** Free text from upstream with the key (any encoding) and key shapes taken out. */
export function scrubUpstreamText(text: string, apiKey: string): string {
  return new SecretMatcher([apiKey]).scrub(scrubSecrets(text, apiKey));
}

/** A provider's error code or type as we keep it (logs, classification): a plain identifier, never the key. */
const CODE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** A request field a validation error names (`max_tokens`, `messages[0].content`, `contents.0.parts`). */
const PARAM = /^[a-z_][a-z0-9_.[\]]{0,63}$/i;

/** An upstream error code, or `unrecognized` when it is no plain identifier or carries the key. */
export function upstreamCode(code: string | number | null | undefined, apiKey: string): string | undefined {
  if (code === null || code === undefined || code === '') return undefined;
  const text = String(code);
  return CODE.test(text) && !new SecretMatcher([apiKey]).leaks(text, 8) ? text : 'unrecognized';
}

/**
 * The request field an upstream validation error names, when it is a plain field path that
 * holds no piece of the key: the one detail worth passing to the caller of a bad request.
 */
export function upstreamParam(param: string | null | undefined, apiKey: string): string | undefined {
  if (!param || !PARAM.test(param)) return undefined;
  return new SecretMatcher([apiKey]).leaks(param, 8) ? undefined : param;
}
