import { createServer as createViteServer } from 'vite';
import { loadEnvironmentOrExit } from './config/loadEnvironment';
import { createGateway } from './gateway/createGateway';
import { createLogger } from './observability/logger';

/**
 * `npm run dev`: the gateway on 3002 (demo mode when .env sets nothing, or KEYRACK_DEMO=1) and the Vite dev
 * server with hot reload, whose proxy (vite.config.ts) sends /trpc, /v1 and /dev to the gateway.
 */
async function main(): Promise<void> {
  const { env } = loadEnvironmentOrExit();
  const logger = createLogger({ level: env.logLevel });
  // The Vite proxy targets 127.0.0.1:3002; the built client is not served in dev.
  const gateway = await createGateway({ env: { ...env, port: 3002, host: '127.0.0.1' }, logger, clientDir: null });
  const vite = await createViteServer({ configFile: 'vite.config.ts' });
  await vite.listen();
  logger.info({ gateway: gateway.url }, `Keyrack dev: gateway on ${gateway.url}, demo client with hot reload on ${vite.resolvedUrls?.local[0] ?? 'http://localhost:5173/'}`);

  const stop = async () => {
    await Promise.allSettled([vite.close(), gateway.close()]);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((error: unknown) => {
  console.error(`Keyrack dev failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
