import type { Logger } from '../observability/logger';

/**
 * SIGHUP reloads the key pools (here and, through the broadcaster, everywhere); SIGTERM and
 * SIGINT shut down gracefully and exit 0. A second stop signal exits at once with 1.
 */
export interface SignalTarget {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

export interface ProcessSignalOptions {
  /** E.g. () => reloader.reload().then((r) => r.ok && broadcaster.announce()). */
  reload: () => Promise<unknown>;
  /** E.g. () => coordinator.shutdown({ graceMs, stopAccepting, closers }). */
  shutdown: () => Promise<unknown>;
  logger?: Logger;
  /** Default: process. */
  target?: SignalTarget;
  /** Default: process.exit. */
  exit?: (code: number) => void;
}

/** Installs the handlers; returns a function that removes them. */
export function handleProcessSignals(options: ProcessSignalOptions): () => void {
  const target = options.target ?? process;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const { logger } = options;
  let stopping = false;

  const onHangup = () => {
    logger?.info({ signal: 'SIGHUP' }, 'reloading the environment file');
    options.reload().catch((error: unknown) => logger?.error({ err: { name: (error as Error).name } }, 'reload failed'));
  };
  const stop = (signal: NodeJS.Signals) => () => {
    if (stopping) {
      logger?.warn({ signal }, 'second stop signal: exiting now');
      exit(1);
      return;
    }
    stopping = true;
    logger?.info({ signal }, 'shutting down');
    options.shutdown().then(
      () => exit(0),
      (error: unknown) => {
        logger?.error({ err: { name: (error as Error).name } }, 'shutdown failed');
        exit(1);
      },
    );
  };
  const onTerm = stop('SIGTERM');
  const onInt = stop('SIGINT');
  target.on('SIGHUP', onHangup);
  target.on('SIGTERM', onTerm);
  target.on('SIGINT', onInt);
  return () => {
    target.off('SIGHUP', onHangup);
    target.off('SIGTERM', onTerm);
    target.off('SIGINT', onInt);
  };
}
