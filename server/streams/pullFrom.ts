/**
 * Whatever pushes events to a sink (a chat engine, a provider adapter), as an async iterable for
 * readers that pull (tests, tools). The producer waits while the reader has not taken the last
 * event; stopping early (break, return) aborts it through the signal it is given, which follows
 * `signal` too. A producer that rejects makes the iteration throw, after the events before.
 */
export async function* pullFrom<E>(
  produce: (emit: (event: E) => void | Promise<void>, signal: AbortSignal) => Promise<void>,
  signal: AbortSignal,
): AsyncGenerator<E> {
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  if (signal.aborted) stop.abort(signal.reason);
  else signal.addEventListener('abort', onAbort, { once: true });
  const queue: E[] = [];
  let arrived: (() => void) | undefined;
  let taken: (() => void) | undefined;
  let ended = false;
  /** The reader stopped: the rest is dropped, not waited for. */
  let left = false;
  let failed = false;
  let failure: unknown;
  const running = produce((event) => {
    if (left) return;
    queue.push(event);
    arrived?.();
    return new Promise<void>((resolve) => (taken = resolve));
  }, stop.signal)
    .then(
      () => void (ended = true),
      (error: unknown) => {
        ended = true;
        failed = true;
        failure = error;
      },
    )
    .finally(() => arrived?.());
  try {
    for (;;) {
      if (queue.length > 0) {
        const event = queue.shift() as E;
        const release = taken;
        taken = undefined;
        release?.();
        yield event;
        continue;
      }
      if (ended) {
        if (failed) throw failure;
        return;
      }
      await new Promise<void>((resolve) => (arrived = resolve));
      arrived = undefined;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (!ended) {
      left = true;
      stop.abort();
      taken?.();
      await running;
    }
  }
}
