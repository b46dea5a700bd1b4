import type { Readable } from 'node:stream';

/** What `each` hands every chunk to; a promise back holds the body until it settles. */
export type ChunkHandler = (chunk: Uint8Array) => void | Promise<void>;

/** What `each` rejects with when the handler threw: its error, kept apart from the transport's. */
export class ChunkHandlerFailure {
  constructor(readonly cause: unknown) {}
}

export interface UpstreamBody {
  /**
   * Pushes every chunk to `onChunk` until the body ends or `stop()` says so after a chunk.
   * Resolves then; rejects with what the transport threw, or with a ChunkHandlerFailure
   * carrying what `onChunk` threw. Called once per body.
   */
  each(onChunk: ChunkHandler, stop: () => boolean): Promise<void>;
  /**
   * Called once reading stops. `answered`: the terminal event was read, so what is left is the
   * stream's tail (a blank line, the end): drained, so the kept-alive connection goes back to the
   * pool. Otherwise (an error, a reader gone) the body is destroyed and the connection with it.
   */
  release(answered: boolean): void;
}

/**
 * A response body handed over chunk by chunk, so that stopping at the terminal event keeps the
 * connection. Leaving a `for await` over a Node stream early destroys it: Node builds an
 * AbortError (with a source-mapped stack trace) and undici closes the socket, so the next
 * request opens a new connection; in issue #8's profile that was ~4% of the gateway's time per
 * request. Node streams (the undici transport) are read by a NodeBody, which never destroys,
 * and drained instead; WHATWG bodies (the fetch transport, used with msw in tests) through
 * their own async iterator.
 */
export function upstreamBody(body: unknown): UpstreamBody {
  const node = body as Partial<Readable>;
  if (typeof node.read !== 'function' || typeof node.resume !== 'function' || typeof node.destroy !== 'function') {
    const chunks = (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    const read = async () => {
      const next = await chunks.next();
      return next.done ? undefined : next.value;
    };
    return {
      async each(onChunk, stop) {
        for (let chunk = await read(); chunk; chunk = await read()) {
          try {
            const wait = onChunk(chunk);
            if (wait) await wait;
          } catch (error) {
            throw new ChunkHandlerFailure(error);
          }
          if (stop()) return;
        }
      },
      // Cancels the WHATWG reader (and with it the response) unless it already ended.
      release: () => void chunks.return?.()?.catch(() => {}),
    };
  }
  return new NodeBody(node as Readable);
}

const prematureClose = () => Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

/** A Node stream's body (the undici transport). */
class NodeBody implements UpstreamBody {
  private detachEach: (() => void) | undefined;

  constructor(private readonly stream: Readable) {}

  /**
   * The body in flowing mode: undici's parser hands each chunk straight to `onChunk` through a
   * 'data' event, with no 'readable' round trip through nextTick, no read(), no promise and no
   * async function resumed per chunk (at 1,000 streams, ~10% of the gateway's busy time, issue
   * #8). A handler's promise pauses the stream until it settles.
   */
  each(onChunk: ChunkHandler, stop: () => boolean): Promise<void> {
    const stream = this.stream;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      /** A handler's promise is pending: the body's end (or failure) waits for it. */
      let holding = false;
      let deferred: { failure?: { error: unknown } } | undefined;
      const finish = (failure?: { error: unknown }) => {
        if (settled) return;
        settled = true;
        this.detachEach?.();
        if (failure) reject(failure.error);
        else resolve();
      };
      const ended = (failure?: { error: unknown }) => {
        if (holding) deferred ??= failure ? { failure } : {};
        else finish(failure);
      };
      const resumeAfter = () => {
        holding = false;
        if (settled) return;
        if (stop()) finish();
        else if (deferred) finish(deferred.failure);
        else stream.resume();
      };
      const onHandlerFailure = (error: unknown) => finish({ error: new ChunkHandlerFailure(error) });
      const onData = (chunk: Uint8Array) => {
        if (settled) return;
        let wait: void | Promise<void>;
        try {
          wait = onChunk(chunk);
        } catch (error) {
          onHandlerFailure(error);
          return;
        }
        if (wait) {
          holding = true;
          stream.pause();
          wait.then(resumeAfter, onHandlerFailure);
        } else if (stop()) finish();
      };
      const onEnd = () => ended();
      const onError = (error: unknown) => ended({ error });
      // Closed before its end without an error (destroyed): as Node's own iterator says it.
      const onClose = () => ended(stream.readableEnded ? undefined : { error: prematureClose() });
      this.detachEach = () => {
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.off('error', onError);
        stream.off('close', onClose);
      };
      if (stream.readableEnded) return finish();
      if (stream.destroyed) return finish({ error: stream.errored ?? prematureClose() });
      stream.on('end', onEnd);
      stream.on('error', onError);
      stream.on('close', onClose);
      stream.on('data', onData);
    });
  }

  release(answered: boolean): void {
    this.detachEach?.();
    const stream = this.stream;
    if (stream.readableEnded || stream.destroyed) return;
    // Nobody reads any more: an error from here on (undici's own abort on destroy, a reset
    // while draining) concerns no one and must not surface as an uncaught exception.
    stream.on('error', () => {});
    if (answered) stream.resume();
    else stream.destroy();
  }
}
