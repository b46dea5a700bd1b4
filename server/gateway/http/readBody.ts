import type { IncomingMessage, ServerResponse } from 'node:http';

export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
}

/**
 * The request body as text, refusing (without reading on) once it passes `limit` bytes. Read
 * with listeners rather than `for await`: Node's stream iterator (an async generator with an
 * end-of-stream watcher) was ~5% of what a /v1 request allocated (issue #8). Past the limit it
 * stops reading and marks the response `connection: close`: the refusal (413) goes out, then
 * the connection closes with the rest of the body unread.
 */
export function readBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      detach();
      req.pause();
      if (!res.headersSent) res.setHeader('connection', 'close');
      reject(new BodyTooLargeError(`request body over ${limit} bytes`));
    };
    const onEnd = () => {
      detach();
      resolve(Buffer.concat(chunks, size).toString('utf8'));
    };
    const onError = (error: Error) => {
      detach();
      reject(error);
    };
    // Closed before its end without an error (the client went away).
    const onClose = () => onError(Object.assign(new Error('request closed before its end'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    const detach = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
