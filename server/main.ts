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
