import { TRPCClientError } from '@trpc/client';
import { UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TokenService } from '../../server/auth/tokens';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { startTestGateway, TEST_JWT_SECRET, testModel, trpcClientFor, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue 24.1 over real HTTP: which start-up configurations run the demo (mock provider, and
 * POST /dev/token only without JWT_SECRET), and that an attacker without a token gets no admin
 * access under any of them. `KEYRACK_DEMO: ''` keeps the harness from asking for demo mode, so
 * each gateway decides from its environment alone, as `npm start` does.
 */

const ENCRYPTION_KEY = 'ef'.repeat(32);
const PROVIDER_KEY = 'sk-test-startup-shared-0000000001';
const ALICE_KEY = 'sk-test-startup-alice-byok-000001';
const models = [testModel('gpt-4o', 'openai')];
const chat = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hello' }] };

interface Mode {
  name: string;
  env: Record<string, string>;
  demo: boolean;
  devTokens: boolean;
  ready: boolean;
}

let mock: MockProvider;
const prefix = (name: string) => `startup-${name}-${process.pid}-${Date.now()}`;
const modes: Mode[] = [];
const gateways = new Map<string, TestGateway>();

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  const redisUrl = inject('redisUrl');
  modes.push(
    // npm start on a fresh clone: the demo, with its login's token endpoint.
    { name: 'nothing set', env: { JWT_SECRET: '' }, demo: true, devTokens: true, ready: true },
    // The attack pass's instance: env file not mounted, or BYOK-only without ENCRYPTION_KEY.
    { name: 'keyless + JWT_SECRET', env: {}, demo: false, devTokens: false, ready: false },
    { name: 'keyless + JWT_SECRET + REDIS_URL', env: { REDIS_URL: redisUrl, REDIS_PREFIX: prefix('redis') }, demo: false, devTokens: false, ready: false },
    {
      name: 'BYOK-only (JWT_SECRET + ENCRYPTION_KEY + REDIS_URL)',
      env: { ENCRYPTION_KEY, REDIS_URL: redisUrl, REDIS_PREFIX: prefix('byok'), OPENAI_BASE_URL: mock.baseUrls.openai },
      demo: false,
      devTokens: false,
      ready: true,
    },
    { name: 'KEYRACK_DEMO=1 + JWT_SECRET', env: { KEYRACK_DEMO: '1' }, demo: true, devTokens: false, ready: true },
    { name: 'shared keys + JWT_SECRET', env: { OPENAI_API_KEY: PROVIDER_KEY, OPENAI_BASE_URL: mock.baseUrls.openai }, demo: false, devTokens: false, ready: true },
  );
  await Promise.all(
    modes.map(async (mode) => {
      gateways.set(mode.name, await startTestGateway({ env: { KEYRACK_DEMO: '', ...mode.env }, models }));
    }),
  );
});
afterAll(async () => {
  await Promise.all([...gateways.values()].map((gw) => gw.close()));
  await mock?.close();
});

const gatewayOf = (name: string) => gateways.get(name)!;
const devToken = (gw: TestGateway, role: 'user' | 'admin' = 'admin') =>
  fetch(`${gw.url}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sub: 'mallory', role }) });

describe('issue 24.1: start-up configurations', () => {
  it('issue 24.1: a keyless instance with JWT_SECRET (and REDIS_URL) has no /dev/token (404) and no mock provider', async () => {
    for (const name of ['keyless + JWT_SECRET', 'keyless + JWT_SECRET + REDIS_URL', 'BYOK-only (JWT_SECRET + ENCRYPTION_KEY + REDIS_URL)']) {
      const gw = gatewayOf(name);
      expect(gw.gateway.demoMode, name).toBe(false);
      expect(gw.gateway.mock, name).toBeNull();
      expect((await devToken(gw)).status, name).toBe(404);
      const status = await gw.trpc(await gw.token('root', 'admin')).pool.status.query();
      expect(status.providers.flatMap((p) => p.keys), name).toEqual([]);
    }
  });

  it('each mode: demo or not, /dev/token only in the demo without JWT_SECRET, /readyz honest', async () => {
    for (const mode of modes) {
      const gw = gatewayOf(mode.name);
      expect(gw.gateway.demoMode, mode.name).toBe(mode.demo);
      expect(gw.gateway.mock !== null, mode.name).toBe(mode.demo);
      expect((await devToken(gw, 'user')).status, mode.name).toBe(mode.devTokens ? 200 : 404);
      const ready = await fetch(`${gw.url}/readyz`);
      expect(ready.status, mode.name).toBe(mode.ready ? 200 : 503);
    }
    const notReady = (await (await fetch(`${gatewayOf('keyless + JWT_SECRET').url}/readyz`)).json()) as { checks: { providers: string } };
    expect(notReady.checks.providers).toMatch(/no provider has keys and BYOK is off/);
    const byokOnly = (await (await fetch(`${gatewayOf('BYOK-only (JWT_SECRET + ENCRYPTION_KEY + REDIS_URL)').url}/readyz`)).json()) as { checks: { providers: string } };
    expect(byokOnly.checks.providers).toMatch(/^byok-only/);
  });

  it('issue 24.1: an attacker without a token gets no admin access under any start-up configuration', async () => {
    const demo = gatewayOf('nothing set');
    // The one endpoint that mints without credentials, and only where nothing is configured: its
    // tokens are signed with a per-process secret, so no other instance accepts them.
    const demoAdmin = ((await (await devToken(demo)).json()) as { token: string }).token;
    const unsigned = new UnsecuredJWT({ role: 'admin' }).setSubject('mallory').setIssuedAt().setExpirationTime('1h').encode();
    const otherSecret = await new TokenService('attacker-guessed-secret-0123456789abcdef').mint({ sub: 'mallory', role: 'admin' });
    for (const mode of modes) {
      const gw = gatewayOf(mode.name);
      if (!mode.devTokens) expect((await devToken(gw)).status, mode.name).toBe(404);
      const forged = mode.name === 'nothing set' ? [unsigned, otherSecret] : [unsigned, otherSecret, demoAdmin];
      for (const token of [null, ...forged]) {
        const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
        expect((await fetch(`${gw.url}/admin/api-keys/status`, { headers })).status, mode.name).toBe(401);
        const refused = await trpcClientFor(`${gw.url}/trpc`, () => token ?? '').pool.status.query().catch((e: unknown) => e);
        expect(refused, mode.name).toBeInstanceOf(TRPCClientError);
        expect((refused as { data?: { code?: string } }).data?.code, mode.name).toBe('UNAUTHORIZED');
      }
    }
  });
});

describe('issue 24.1: BYOK-only is a production mode', () => {
  it("serves users' own keys, no mock; a user without one gets SERVICE_UNAVAILABLE", async () => {
    const gw = gatewayOf('BYOK-only (JWT_SECRET + ENCRYPTION_KEY + REDIS_URL)');
    const alice = gw.trpc(await gw.token('alice'));
    await alice.byok.add.mutate({ provider: 'openai', apiKey: ALICE_KEY });
    const answer = await alice.chat.complete.mutate(chat);
    expect(answer.text).toMatch(/^Mock answer to: hello/);
    expect(mock.statsFor(ALICE_KEY).total.completed).toBe(1);
    const refused = await gw.trpc(await gw.token('bob')).chat.complete.mutate(chat).catch((e: unknown) => e);
    expect((refused as { data?: { code?: string } }).data?.code).toBe('SERVICE_UNAVAILABLE');
  });

  it('KEYRACK_DEMO=1 with JWT_SECRET: the mock serves, tokens come only from JWT_SECRET', async () => {
    const gw = gatewayOf('KEYRACK_DEMO=1 + JWT_SECRET');
    const minted = await new TokenService(TEST_JWT_SECRET).mint({ sub: 'carol', role: 'user' });
    const answer = await gw.trpc(minted).chat.complete.mutate(chat);
    expect(answer.text).toMatch(/^Mock answer to: hello/);
  });
});
