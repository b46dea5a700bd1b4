import type { Readable } from 'node:stream';

export interface UpstreamBody {
  /** The next chunk of the body; undefined at its end. Rejects with what the transport threw. */
  read(): Promise<Uint8Array | undefined>;
  /**
   * Called once reading stops. `answered`: the terminal event was read, so what is left is the
   * stream's tail (a blank line, the end): drained, so the kept-alive connection goes back to the
   * pool. Otherwise (an error, a reader gone) the body is destroyed and the connection with it.
   */
  release(answered: boolean): void;
}

/**
 * A response body read chunk by chunk, so that stopping at the terminal event keeps the
 * connection. Leaving a `for await` over a Node stream early destroys it: Node builds an
 * AbortError (with a source-mapped stack trace) and undici closes the socket, so the next
 * request opens a new connection; in issue #8's profile that was ~4% of the gateway's time per
 * request. Node streams (the undici transport) are read by a ChunkReader, which never destroys,
 * and drained instead; WHATWG bodies (the fetch transport, used with msw in tests) through
 * their own async iterator.
 */
export function upstreamBody(body: unknown): UpstreamBody {
  const node = body as Partial<Readable>;
  if (typeof node.read !== 'function' || typeof node.resume !== 'function' || typeof node.destroy !== 'function') {
    const chunks = (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    return {
      read: async () => {
        const next = await chunks.next();
        return next.done ? undefined : next.value;
      },
      // Cancels the WHATWG reader (and with it the response) unless it already ended.
      release: () => void chunks.return?.()?.catch(() => {}),
    };
  }
  return new ChunkReader(node as Readable);
}

/**
 * The chunks of a Node stream, one promise per chunk and nothing else. Node's own async
 * iterator is an async generator awaiting a new promise per chunk; at 1,000 streams it was a
 * third of what the streaming path allocated (issue #8).
 */
class ChunkReader implements UpstreamBody {
  private waiting: { resolve: (chunk: Uint8Array | undefined) => void; reject: (error: unknown) => void } | undefined;
  private ended = false;
  private failure: { error: unknown } | undefined;

  constructor(private readonly stream: Readable) {
    stream.on('readable', this.onReadable);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
    stream.on('close', this.onClose);
  }

  read(): Promise<Uint8Array | undefined> {
    if (this.failure) return Promise.reject(this.failure.error);
    if (this.ended) return Promise.resolve(undefined);
    const chunk = this.stream.read() as Uint8Array | null;
    if (chunk !== null) return Promise.resolve(chunk);
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  release(answered: boolean): void {
    this.detach();
    const stream = this.stream;
    if (stream.readableEnded || stream.destroyed) return;
    // Nobody reads any more: an error from here on (undici's own abort on destroy, a reset
    // while draining) concerns no one and must not surface as an uncaught exception.
    stream.on('error', () => {});
    if (answered) stream.resume();
    else stream.destroy();
  }

  private readonly onReadable = (): void => {
    const waiting = this.waiting;
    if (!waiting) return;
    const chunk = this.stream.read() as Uint8Array | null;
    if (chunk === null) return; // 'end' follows, or more data
    this.waiting = undefined;
    waiting.resolve(chunk);
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.detach();
    this.settle();
  };

  private readonly onError = (error: unknown): void => {
    this.failure = { error };
    this.detach();
    this.settle();
  };

  /** Closed before its end without an error (destroyed): as Node's own iterator says it. */
  private readonly onClose = (): void => {
    if (this.ended || this.failure) return;
    this.failure = { error: Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }) };
    this.detach();
    this.settle();
  };

  private settle(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    this.waiting = undefined;
    if (this.failure) waiting.reject(this.failure.error);
    else waiting.resolve(undefined);
  }

  private detach(): void {
    this.stream.off('readable', this.onReadable);
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onError);
    this.stream.off('close', this.onClose);
  }
}
