import type { Logger } from '../observability/logger';

/**
 * Graceful shutdown (issue #7): stop accepting, let open streams finish within the grace
 * period, end the rest with a reason the gateway turns into an error event clients understand
 * (code `shutting_down`), then close what holds the process open (usage flush before Redis).
 */

/** The abort reason streams cut by shutdown receive; the gateway maps it to error code 'shutting_down'. */
export class ShuttingDownError extends Error {
  override readonly name = 'ShuttingDownError';
  readonly code = 'shutting_down' as const;
  constructor() {
    super('The gateway is shutting down; retry the request.');
  }

  static isInstance(value: unknown): value is ShuttingDownError {
    return value instanceof ShuttingDownError || (typeof value === 'object' && value !== null && (value as { code?: unknown }).code === 'shutting_down');
  }
}

/** What a tracked stream exposes: an AbortController fits. */
export interface StreamHandle {
  abort(reason?: unknown): void;
}

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface Closer {
  /** Safe for logs: `usage flush`, `redis`, `upstream http`. */
  name: string;
  close(): unknown;
}

export interface ShutdownOptions {
  /** SHUTDOWN_GRACE_MS: how long open streams may run on. */
  graceMs: number;
  /** Stop taking connections (server.close()). Awaited after the streams, bounded by closerTimeoutMs. */
  stopAccepting?: () => unknown;
  /** Run in order, each bounded by closerTimeoutMs; a failing closer is logged and the next runs. */
  closers?: Closer[];
  /** After aborting, how long streams get to write their error event and unregister. Default 1 000 ms. */
  abortWaitMs?: number;
  /** Default 5 000 ms. */
  closerTimeoutMs?: number;
}

export interface ShutdownReport {
  /** Streams that ended by themselves within the grace period. */
  finished: number;
  /** Streams cut with ShuttingDownError. */
  aborted: number;
  closers: { name: string; ok: boolean }[];
}

export interface ShutdownCoordinatorOptions {
  logger?: Logger;
  /** Injected in tests; default the global timers. */
  timers?: Timers;
  /** Every change of the open stream count (e.g. the open streams gauge). */
  onOpenStreams?: (count: number) => void;
}

export interface ShutdownCoordinator {
  /**
   * Track an open stream until the returned function is called (call it exactly when the stream
   * ends, however it ends; extra calls are harmless). During shutdown a new stream is aborted at once (in a microtask).
   */
  track(handle: StreamHandle): () => void;
  openStreams(): number;
  isShuttingDown(): boolean;
  /** Idempotent: a second call returns the first call's promise. Never rejects. */
  shutdown(options: ShutdownOptions): Promise<ShutdownReport>;
}

const systemTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export function createShutdownCoordinator(options: ShutdownCoordinatorOptions = {}): ShutdownCoordinator {
  const { logger } = options;
  const timers = options.timers ?? systemTimers;
  const open = new Set<StreamHandle>();
  const drained: (() => void)[] = [];
  let started: Promise<ShutdownReport> | undefined;

  function changed(): void {
    options.onOpenStreams?.(open.size);
    if (open.size === 0) drained.splice(0).forEach((resolve) => resolve());
  }

  /** Resolves true when `promise` settles first, false when `ms` passes first. */
  function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = timers.setTimeout(() => resolve(false), ms);
      promise.then(
        () => {
          timers.clearTimeout(timer);
          resolve(true);
        },
        () => {
          timers.clearTimeout(timer);
          resolve(true);
        },
      );
    });
  }

  function allClosed(): Promise<void> {
    if (open.size === 0) return Promise.resolve();
    return new Promise((resolve) => drained.push(resolve));
  }

  async function run(shutdownOptions: ShutdownOptions): Promise<ShutdownReport> {
    const abortWaitMs = shutdownOptions.abortWaitMs ?? 1_000;
    const closerTimeoutMs = shutdownOptions.closerTimeoutMs ?? 5_000;
    const atStart = open.size;
    logger?.info({ openStreams: atStart, graceMs: shutdownOptions.graceMs }, 'shutting down: no new requests; waiting for open streams');
    // server.close() resolves only when every connection has ended, so it is awaited later, not here.
    const stopped = Promise.resolve().then(() => shutdownOptions.stopAccepting?.());
    stopped.catch((error: unknown) => logger?.warn({ err: { name: (error as Error).name } }, 'stop accepting failed'));

    await within(allClosed(), shutdownOptions.graceMs);
    const remaining = [...open];
    const finished = atStart - remaining.length;
    if (remaining.length > 0) {
      logger?.warn({ aborted: remaining.length }, 'grace period over: ending open streams with shutting_down');
      const reason = new ShuttingDownError();
      for (const handle of remaining) {
        try {
          handle.abort(reason);
        } catch {
          // A handle that throws on abort is still dropped below.
        }
      }
      if (!(await within(allClosed(), abortWaitMs))) {
        logger?.warn({ stuck: open.size }, 'streams did not end after abort; closing anyway');
        open.clear();
        changed();
      }
    }
    await within(stopped, closerTimeoutMs);

    const closers: ShutdownReport['closers'] = [];
    for (const closer of shutdownOptions.closers ?? []) {
      let ok = false;
      const closing = Promise.resolve()
        .then(() => closer.close())
        .then(() => {
          ok = true;
        });
      closing.catch((error: unknown) => logger?.error({ closer: closer.name, err: { name: (error as Error).name } }, 'closer failed'));
      const settled = await within(closing, closerTimeoutMs);
      if (!settled) logger?.error({ closer: closer.name }, 'closer timed out');
      closers.push({ name: closer.name, ok });
    }
    logger?.info({ finished, aborted: remaining.length, closers }, 'shutdown complete');
    return { finished, aborted: remaining.length, closers };
  }

  return {
    track(handle) {
      if (started) {
        // Next microtask: the caller holds its untrack function before its abort handler runs.
        queueMicrotask(() => handle.abort(new ShuttingDownError()));
        return () => undefined;
      }
      open.add(handle);
      changed();
      return () => {
        if (open.delete(handle)) changed();
      };
    },
    openStreams: () => open.size,
    isShuttingDown: () => started !== undefined,
    shutdown(shutdownOptions) {
      started ??= run(shutdownOptions);
      return started;
    },
  };
}
