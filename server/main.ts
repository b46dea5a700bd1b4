import { setFlagsFromString } from 'node:v8';
import { loadEnvironmentOrExit } from './config/loadEnvironment';
import { createGateway } from './gateway/createGateway';
import { createLogger } from './observability/logger';
import { handleProcessSignals } from './ops/handleProcessSignals';

/**
 * `npm start`: reads .env (ENV_FILE; a missing file is fine), checks the environment, starts
 * the gateway. A bad environment prints which variables are wrong (never their values) and
 * exits 1.
 */
async function main(): Promise<void> {
  // V8 moves an allocation site's objects straight to the old generation once enough of them
  // have survived a scavenge. A streaming gateway trips that on sites whose objects live one
  // chunk (tens of ms), so at 1,000 streams the heap grew by ~100 MB of garbage every few
  // seconds until a major GC (issue #8, BENCHMARKS.md). Set here rather than on the command
  // line, so every way of starting the gateway gets it.
  setFlagsFromString('--no-allocation-site-pretenuring');
  // baseEnv is the environment before the file: pool.reload / SIGHUP re-read the file on top of
  // it, so a key deleted from the file really leaves.
  const { env, baseEnv } = loadEnvironmentOrExit();
  const logger = createLogger({ level: env.logLevel });
  const gateway = await createGateway({ env, logger, baseEnv });
  logger.info({ url: gateway.url }, `Keyrack gateway listening on ${gateway.url}`);

  // SIGHUP: reload here and on every instance sharing Redis. SIGTERM/SIGINT: graceful shutdown
  // (open streams finish within SHUTDOWN_GRACE_MS, usage flushed, Redis closed), exit 0.
  handleProcessSignals({
    logger,
    reload: async () => {
      const report = await gateway.reload();
      logger.info({ ok: report.ok, ...(report.ok ? {} : { problems: report.problems }) }, 'SIGHUP: pool reload');
    },
    shutdown: () => gateway.close(),
  });
}

main().catch((error: unknown) => {
  console.error(`Keyrack failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
