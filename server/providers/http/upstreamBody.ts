import type { Readable } from 'node:stream';

export interface UpstreamBody {
  chunks: AsyncIterable<Uint8Array>;
  /**
   * Called once reading stops. `answered`: the terminal event was read, so what is left is the
   * stream's tail (a blank line, the end): drained, so the kept-alive connection goes back to the
   * pool. Otherwise (an error, a consumer gone) the body is destroyed and the connection with it.
   */
  release(answered: boolean): void;
}

/**
 * A streamed response body read so that stopping at the terminal event keeps the connection.
 * Leaving a `for await` over a Node stream early destroys it: Node builds an AbortError (with a
 * source-mapped stack trace) and undici closes the socket, so the next request opens a new
 * connection; in issue #8's profile that was ~4% of the gateway's time per request. Node
 * streams (the undici transport) are iterated without destroy-on-return and drained instead;
 * WHATWG bodies (the fetch transport, used with msw in tests) are read as before.
 */
export function upstreamBody(body: unknown): UpstreamBody {
  const node = body as Partial<Readable> & AsyncIterable<Uint8Array>;
  if (typeof node.iterator !== 'function' || typeof node.resume !== 'function' || typeof node.destroy !== 'function') {
    return { chunks: body as AsyncIterable<Uint8Array>, release: () => {} };
  }
  const stream = node as Readable;
  return {
    chunks: stream.iterator({ destroyOnReturn: false }),
    release(answered) {
      if (stream.readableEnded || stream.destroyed) return;
      // Nobody reads any more: an error from here on (undici's own abort on destroy, a reset
      // while draining) concerns no one and must not surface as an uncaught exception.
      stream.on('error', () => {});
      if (answered) stream.resume();
      else stream.destroy();
    },
  };
}
