/** What stands where the key stood (as scrubSecrets writes it). */
const REDACTED = '[redacted]';

/**
 * The last line of defence for text relayed from a provider as it came (the /v1/messages and
 * /v1/responses passthroughs): the key the request was sent with never reaches the client,
 * even if a provider (or a proxy before it) echoed it into a stream, an `error` event or an
 * answer. Chunk by chunk: each is passed with the key replaced, holding back only a tail that
 * could be the start of the key, until the next chunk says whether it is. Relayed SSE text ends
 * every event with a blank line, which no key starts with, so in practice nothing waits.
 */
export class KeyEchoGuard {
  private held = '';

  constructor(private readonly key: string) {}

  /** The text to send now for this chunk. */
  pass(chunk: string): string {
    const key = this.key;
    let text = this.held === '' ? chunk : this.held + chunk;
    if (key.length > 0 && text.includes(key)) text = text.split(key).join(REDACTED);
    const keep = partialKeyAtEnd(text, key);
    this.held = keep === 0 ? '' : text.slice(text.length - keep);
    return keep === 0 ? text : text.slice(0, text.length - keep);
  }

  /** What is still held at the end of the stream (a tail that turned out not to be the key). */
  end(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }
}

/** Whole text at once (a one-piece answer): the key replaced. */
export function withoutKey(text: string, key: string): string {
  return key.length > 0 && text.includes(key) ? text.split(key).join(REDACTED) : text;
}

/** The length of the longest end of `text` that is the key's beginning (not the whole key), else 0. */
function partialKeyAtEnd(text: string, key: string): number {
  const first = key.charCodeAt(0);
  for (let i = Math.max(0, text.length - key.length + 1); i < text.length; i++) {
    if (text.charCodeAt(i) === first && key.startsWith(text.slice(i))) return text.length - i;
  }
  return 0;
}
