import { parseGatewayEnv } from '../../../server/config/env';
import { createGateway } from '../../../server/gateway/createGateway';

/**
 * A gateway in demo mode in its own process, for tests whose environment (jsdom) cannot load
 * server code. Prints one JSON line `{ url, mockUrl }` when listening; exits on SIGTERM.
 * KEYRACK_TEST_CLIENT_DIR: serve this built client (default: none). KEYRACK_TEST_DETACH_GRACE_MS: how
 * long a stream nobody listens to keeps its upstream call (default: the gateway's).
 */
const gateway = await createGateway({
  env: parseGatewayEnv({ PORT: '0', MOCK_PROVIDER_PORT: '0' }),
  clientDir: process.env.KEYRACK_TEST_CLIENT_DIR || null,
  poolWatchIntervalMs: Number(process.env.KEYRACK_TEST_POOL_WATCH_MS ?? 100),
  mockChunkDelayMs: Number(process.env.KEYRACK_TEST_CHUNK_DELAY_MS ?? 20),
  ...(process.env.KEYRACK_TEST_DETACH_GRACE_MS ? { streams: { detachGraceMs: Number(process.env.KEYRACK_TEST_DETACH_GRACE_MS) } } : {}),
});
process.stdout.write(JSON.stringify({ url: gateway.url, mockUrl: gateway.mock?.url ?? null }) + '\n');
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void gateway.close().finally(() => process.exit(0)));
}
