import { loadEnvironmentOrExit } from './config/loadEnvironment';
import { createGateway } from './gateway/createGateway';
import { createLogger } from './observability/logger';

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

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1); // a second signal: do not wait
    stopping = true;
    logger.info({ signal }, 'shutting down');
    gateway.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGHUP', () => {
    gateway.deps.reload?.().then(
      (report) => logger.info({ ok: report.ok, ...(report.ok ? {} : { problems: report.problems }) }, 'SIGHUP: pool reload'),
      (error: unknown) => logger.error({ err: error instanceof Error ? error.message : String(error) }, 'SIGHUP: pool reload failed'),
    );
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  console.error(`Keyrack failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
