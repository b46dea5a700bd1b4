import type { ServerResponse } from 'node:http';

/**
 * The body of a streamed HTTP response (server-sent events), each write one frame on the socket.
 *
 * Why not `res.write` for every write: for a chunked HTTP/1.1 body Node's `res.write` corks the
 * socket, queues the chunk's length, a CRLF, the data and another CRLF as four buffered writes,
 * and uncorks them on the next tick as one writev: per event, four write requests, a nextTick,
 * and the arrays writev needs. With 1,000 streams (20,000 events/s, issue #8) that machinery was
 * about a quarter of what the gateway allocated per event, on both streaming paths. Here the
 * frame (length, data, CRLFs) is one string and one `socket.write`: the same bytes on the wire.
 *
 * The first write always goes through `res.write`, which sends the status line and headers with
 * it. Later writes go to the socket only while that is the same as what Node would do: Node chose
 * chunked encoding for this response, the request was not HEAD (no body), the response has not
 * ended, and Node holds nothing of it unwritten (`res.writableLength` is the socket's own: a
 * pipelined response whose socket is still busy keeps its output in Node until then). Otherwise
 * `res.write` again. `end` is always Node's, which writes the last chunk and the terminator.
 */
export class StreamedResponse {
  private started = false;
  private framed = false;

  constructor(readonly res: ServerResponse) {}

  /** False when the socket's buffer is full: wait for `drained()` (or `onDrain`) before more. */
  write(text: string): boolean {
    const { res } = this;
    if (!this.started) {
      this.started = true;
      const ok = res.write(text);
      // Known once the headers are stored, which the first write has made sure of. A response
      // still waiting for its socket (behind a pipelined one) stays with Node throughout.
      this.framed = res.chunkedEncoding && res.req.method !== 'HEAD' && res.socket !== null;
      return ok;
    }
    const socket = res.socket;
    if (this.framed && text.length > 0 && socket !== null && !res.writableEnded && res.writableLength === socket.writableLength) {
      return socket.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
    }
    return res.write(text);
  }

  end(text?: string): void {
    if (text === undefined) this.res.end();
    else this.res.end(text);
  }

  /**
   * Resolves once a write that returned false can be followed by more, or once the client has
   * gone: a streaming writer waits on it instead of buffering without bound.
   */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      const stop = this.onDrain(() => {
        stop();
        resolve();
      }, () => resolve());
    });
  }

  /**
   * Calls `more` each time the socket takes more writes, until the response finishes or closes
   * (then `gone`, once). Returns a function that stops listening. The socket's 'drain' is
   * what Node's own `res` 'drain' comes from, and it also covers the writes made on the socket
   * here; the listener leaves with the response, as a kept-alive socket serves the next one.
   */
  onDrain(more: () => void, gone?: () => void): () => void {
    const { res } = this;
    const source = res.socket ?? res;
    const done = () => {
      stop();
      gone?.();
    };
    const stop = () => {
      source.off('drain', more);
      res.off('close', done);
      res.off('finish', done);
    };
    source.on('drain', more);
    res.on('close', done);
    res.on('finish', done);
    return stop;
  }
}
