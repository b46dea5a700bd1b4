import type { ServerResponse } from 'node:http';

/**
 * Resolves once a response that refused a write (res.write returned false) takes more, or once
 * its client has gone: a streaming writer waits on it instead of buffering without bound.
 */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
