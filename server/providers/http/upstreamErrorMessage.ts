import { scrubSecrets } from './scrubSecrets';

const MAX_MESSAGE = 300;

/** `openai 429: Rate limit reached ...`, scrubbed of keys and cut to a log-friendly length. */
export function upstreamErrorMessage(provider: string, status: number | undefined, message: string | null | undefined, apiKey: string): string {
  const text = scrubSecrets((message ?? '').replace(/\s+/g, ' ').trim(), apiKey);
  const short = text.length > MAX_MESSAGE ? text.slice(0, MAX_MESSAGE) + '…' : text;
  const where = status === undefined ? `${provider} stream error` : `${provider} ${status}`;
  return short ? `${where}: ${short}` : where;
}
