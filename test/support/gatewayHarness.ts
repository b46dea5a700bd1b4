import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink, type TRPCClient } from '@trpc/client';
import { EventSource } from 'eventsource';
import OpenAI from 'openai';
import type { UserRole } from '../../shared/api';
import type { ModelEntryInput } from '../../shared/business';
import { modelEntrySchema } from '../../shared/business';
import { parseGatewayEnv } from '../../server/config/env';
import { createGateway, type CreateGatewayOptions, type Gateway } from '../../server/gateway/createGateway';
import { BusinessConfig, DEFAULT_BUSINESS_CONFIG } from '../../server/business/BusinessConfig';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import type { AppRouter } from '../../server/gateway/router';

/** Long enough for HS256 (32+), obviously a test value. */
export const TEST_JWT_SECRET = 'test-jwt-secret-keyrack-gateway-harness-0123456789';

export interface TestGatewayOptions extends Omit<CreateGatewayOptions, 'env'> {
  /** Environment variables on top of PORT=0, MOCK_PROVIDER_PORT=0 and TEST_JWT_SECRET. */
  env?: Record<string, string>;
  /** Catalog models (default: server/business/defaults.json); takes precedence over `catalog`. */
  models?: ModelEntryInput[];
}

export interface TestGateway {
  gateway: Gateway;
  /** http://127.0.0.1:PORT */
  url: string;
  token(sub: string, role?: UserRole, ttl?: string | number): Promise<string>;
  /** The typed tRPC client, batched HTTP for queries/mutations and SSE (eventsource) for subscriptions. */
  trpc(token: string | (() => string | Promise<string>)): TRPCClient<AppRouter>;
  /** The official openai package pointed at the gateway's /v1, with the JWT as its API key. */
  openai(token: string): OpenAI;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A real gateway on 127.0.0.1 with a free port. Without provider keys in `env` it runs in demo
 * mode (KEYRACK_DEMO=1 unless `env` sets it): the real mock provider, key pool (memory store)
 * and dispatcher behind it.
 */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const { env: extraEnv, models, ...rest } = options;
  // No provider key given: demo mode (the mock provider), asked for explicitly since JWT_SECRET
  // is set. Demo mode with JWT_SECRET has no POST /dev/token: pass JWT_SECRET: '' for one that has.
  const hasKeys = Object.entries(extraEnv ?? {}).some(([name, value]) => /_API_KEY(?:_\d+)?$/.test(name) && value.trim() !== '');
  const demo = hasKeys || extraEnv?.KEYRACK_DEMO !== undefined ? {} : { KEYRACK_DEMO: '1' };
  const env = parseGatewayEnv({ PORT: '0', HOST: '127.0.0.1', MOCK_PROVIDER_PORT: '0', JWT_SECRET: TEST_JWT_SECRET, ...demo, ...extraEnv });
  const gateway = await createGateway({
    env,
    clientDir: null,
    mockChunkDelayMs: 0,
    ...rest,
    ...(models ? { catalog: await catalogOf(models) } : {}),
  });
  const clients: TRPCClient<AppRouter>[] = [];
  const close = () => gateway.close();
  return {
    gateway,
    url: gateway.url,
    token: (sub, role = 'user', ttl = '1h') => gateway.tokens.mint({ sub, role }, ttl),
    trpc(token) {
      const client = trpcClientFor(`${gateway.url}/trpc`, typeof token === 'string' ? () => token : token);
      clients.push(client);
      return client;
    },
    openai: (token) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: token, maxRetries: 0 }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * The browser's EventSource cannot send headers; the `eventsource` package accepts a custom
 * fetch, which adds the bearer token on every (re)connect.
 */
export function trpcClientFor(url: string, getToken: () => string | Promise<string>): TRPCClient<AppRouter> {
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url,
          EventSource,
          // Read inside fetch: the eventsource package's own reconnects reuse this fetch too.
          eventSourceOptions: () => ({
            fetch: async (input, init) =>
              fetch(input, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${await getToken()}` } }),
          }),
        }),
        false: httpBatchLink({ url, headers: async () => ({ authorization: `Bearer ${await getToken()}` }) }),
      }),
    ],
  });
}

/** The real BusinessConfig over a memory store, seeded with just these models. */
export async function catalogOf(models: ModelEntryInput[]): Promise<BusinessConfig> {
  const business = new BusinessConfig({
    store: createMemoryDocStore(),
    defaults: { settings: DEFAULT_BUSINESS_CONFIG.settings, models: models.map((m) => modelEntrySchema.parse(m)) },
  });
  await business.init();
  return business;
}

/** Every capability on: the mock provider takes tools, images, JSON output and thinking in every wire format. */
export const ALL_CAPABILITIES = { tools: true, vision: true, json_schema: true, reasoning: true } as const;

/** A catalog entry for tests; every capability on unless `extra` says otherwise. */
export function testModel(id: string, provider: ModelEntryInput['provider'], extra: Partial<ModelEntryInput> = {}): ModelEntryInput {
  return { id, provider, display_name: id, input_price: 1, output_price: 2, is_active: true, fallbacks: [], capabilities: ALL_CAPABILITIES, ...extra };
}
