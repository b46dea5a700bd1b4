/**
 * Waits for a condition that an external process (redis-server, a reconnecting client) makes
 * true. Polls on short timers with a hard deadline; it never asserts on how long it took.
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, what = 'condition', timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Collects pino lines, to look for warnings and for secrets. */
export function captureLines(): { lines: string[]; destination: { write(line: string): void } } {
  const lines: string[] = [];
  return { lines, destination: { write: (line: string) => void lines.push(line) } };
}
