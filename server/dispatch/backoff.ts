/**
 * Wait before retrying after a transient failure: exponential from `baseMs`, capped, with "equal
 * jitter" (half fixed, half random) so a burst of failed requests does not retry in lockstep.
 */
export function backoffDelay(attempt: number, random: () => number, baseMs = 200, capMs = 2000): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + (exp / 2) * random());
}

/** Resolves after `ms`, or at once when the signal aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
