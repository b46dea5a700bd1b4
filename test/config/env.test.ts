import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError, parseGatewayEnv } from '../../server/config/env';
import { parseEnvFile } from '../../server/config/envFile';

const SECRET_A = 'sk-test-aaaaaaaaaaaaaaaaaaaaaaaa1111';
const SECRET_B = 'sk-test-bbbbbbbbbbbbbbbbbbbbbbbb2222';
const JWT_SECRET = 'test-jwt-secret-that-is-long-enough-000';

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('parseGatewayEnv', () => {
  it('runs in demo mode with no keys and embedded defaults', () => {
    const env = parseGatewayEnv({});
    expect(env.demoMode).toBe(true);
    expect(env.port).toBe(3002);
    expect(env.redisUrl).toBeNull();
    expect(env.providers.every((p) => p.keys.length === 0)).toBe(true);
  });

  it('reads numbered keys with gaps, the plain key first, and accounts', () => {
    const env = parseGatewayEnv({
      JWT_SECRET,
      OPENAI_API_KEY_3: SECRET_B,
      OPENAI_API_KEY: SECRET_A,
      OPENAI_API_KEY_3_ACCOUNT: 'org-1',
      OPENAI_RPM_PER_KEY: '100',
      OPENAI_STRATEGY: 'least-loaded',
      GOOGLE_AI_API_KEY_1: 'AIza-test-not-a-real-key-000000',
    });
    const openai = env.providers.find((p) => p.provider === 'openai')!;
    expect(openai.keys.map((k) => k.variable)).toEqual(['OPENAI_API_KEY', 'OPENAI_API_KEY_3']);
    expect(openai.keys[1]!.account).toBe('org-1');
    expect(openai.keys[0]!.account).toBeNull();
    expect(openai.rpmPerKey).toBe(100);
    expect(openai.strategy).toBe('least-loaded');
    expect(env.providers.find((p) => p.provider === 'google')!.keys).toHaveLength(1);
    expect(env.demoMode).toBe(false);
  });

  it('names the variable of a bad value and never prints the value', () => {
    const error = errorOf(() =>
      parseGatewayEnv({
        JWT_SECRET,
        OPENAI_API_KEY_1: SECRET_A,
        OPENAI_API_KEY_2: SECRET_A,
        ANTHROPIC_RPM_PER_KEY: 'lots',
        GROQ_STRATEGY: 'random',
      }),
    );
    const variables = error.problems.map((p) => p.variable).sort();
    expect(variables).toEqual(['ANTHROPIC_RPM_PER_KEY', 'GROQ_STRATEGY', 'OPENAI_API_KEY_2']);
    expect(error.message).toContain('duplicate key');
    expect(error.message).not.toContain(SECRET_A);
    expect(error.message).not.toContain('lots');
  });

  it('requires JWT_SECRET once real keys are configured', () => {
    const error = errorOf(() => parseGatewayEnv({ OPENAI_API_KEY: SECRET_A }));
    expect(error.problems.map((p) => p.variable)).toEqual(['JWT_SECRET']);
  });

  it('treats 0 as unlimited', () => {
    const env = parseGatewayEnv({ JWT_SECRET, OPENAI_API_KEY: SECRET_A, OPENAI_RPM_PER_KEY: '0', OPENAI_TPM_PER_KEY: '0' });
    const openai = env.providers.find((p) => p.provider === 'openai')!;
    expect([openai.rpmPerKey, openai.tpmPerKey]).toEqual([0, 0]);
  });
});

const ENCRYPTION_KEY = 'ab'.repeat(32);
const REDIS_URL = 'redis://127.0.0.1:6399';

describe('issue 24.1: demo mode is an explicit, safe opt-in', () => {
  it('issue 24.1: a keyless instance with JWT_SECRET, ENCRYPTION_KEY and REDIS_URL set is not a demo and has no /dev/token', () => {
    for (const env of [{ JWT_SECRET }, { JWT_SECRET, REDIS_URL }, { JWT_SECRET, ENCRYPTION_KEY, REDIS_URL }]) {
      const parsed = parseGatewayEnv(env);
      expect(parsed.demoMode).toBe(false);
      expect(parsed.devTokens).toBe(false);
    }
  });

  it('issue 24.1: an instance whose env file was not mounted (REDIS_URL or ENCRYPTION_KEY only) refuses to start, naming JWT_SECRET', () => {
    for (const env of [{ REDIS_URL }, { ENCRYPTION_KEY }, { ENCRYPTION_KEY_PREVIOUS: ENCRYPTION_KEY }, { KEYRACK_DEMO: '0' }]) {
      const error = errorOf(() => parseGatewayEnv(env));
      expect(error.problems.map((p) => p.variable)).toEqual(['JWT_SECRET']);
      expect(error.message).toMatch(/outside demo mode.*KEYRACK_DEMO=1/);
      expect(error.message).not.toContain(ENCRYPTION_KEY);
    }
  });

  it('nothing set at all (npm start on a fresh clone) is the demo, with /dev/token', () => {
    expect(parseGatewayEnv({ PORT: '3002', LOG_LEVEL: 'info' })).toMatchObject({ demoMode: true, devTokens: true, jwtSecret: null });
    // Blank values (a copied .env.example) count as unset.
    expect(parseGatewayEnv({ JWT_SECRET: '', ENCRYPTION_KEY: ' ', REDIS_URL: '', OPENAI_API_KEY_1: '' })).toMatchObject({ demoMode: true, devTokens: true });
  });

  it('.env.example copied as it is runs the demo', () => {
    const { values, problems } = parseEnvFile(readFileSync('.env.example', 'utf8'));
    expect(problems).toEqual([]);
    expect(parseGatewayEnv(values)).toMatchObject({ demoMode: true, devTokens: true, jwtMaxAgeSeconds: 86_400 });
  });

  it('KEYRACK_DEMO=1 asks for the demo; with JWT_SECRET set it has no /dev/token', () => {
    expect(parseGatewayEnv({ KEYRACK_DEMO: '1', REDIS_URL })).toMatchObject({ demoMode: true, devTokens: true });
    expect(parseGatewayEnv({ KEYRACK_DEMO: 'true', JWT_SECRET, REDIS_URL })).toMatchObject({ demoMode: true, devTokens: false, jwtSecret: JWT_SECRET });
  });

  it('KEYRACK_DEMO=1 with provider keys, or a value other than 1/0, is refused', () => {
    expect(errorOf(() => parseGatewayEnv({ KEYRACK_DEMO: '1', JWT_SECRET, OPENAI_API_KEY: SECRET_A })).problems.map((p) => p.variable)).toEqual(['KEYRACK_DEMO']);
    expect(errorOf(() => parseGatewayEnv({ KEYRACK_DEMO: 'yes' })).problems.map((p) => p.variable)).toContain('KEYRACK_DEMO');
  });

  it('issue 24.1: under no start-up configuration is there a /dev/token next to JWT_SECRET, provider keys or outside demo mode', () => {
    const options = {
      keys: [{}, { OPENAI_API_KEY: SECRET_A }],
      jwt: [{}, { JWT_SECRET }, { JWT_SECRET: 'too-short' }],
      enc: [{}, { ENCRYPTION_KEY }],
      redis: [{}, { REDIS_URL }],
      demo: [{}, { KEYRACK_DEMO: '1' }, { KEYRACK_DEMO: '0' }] as { KEYRACK_DEMO?: string }[],
    };
    let started = 0;
    for (const keys of options.keys)
      for (const jwt of options.jwt)
        for (const enc of options.enc)
          for (const redis of options.redis)
            for (const demo of options.demo) {
              const raw = { ...keys, ...jwt, ...enc, ...redis, ...demo };
              let env;
              try {
                env = parseGatewayEnv(raw);
              } catch (error) {
                if (error instanceof ConfigError) continue; // refused to start: nothing served
                throw error;
              }
              started += 1;
              // Demo mode (the mock provider, and its token endpoint unless JWT_SECRET is set) only when asked for or nothing is configured.
              if (env.demoMode) expect(demo.KEYRACK_DEMO === '1' || Object.keys(raw).every((name) => name === 'KEYRACK_DEMO'), JSON.stringify(Object.keys(raw))).toBe(true);
              if (env.devTokens) {
                expect(raw).not.toHaveProperty('JWT_SECRET');
                expect(raw).not.toHaveProperty('OPENAI_API_KEY');
                expect(env.demoMode).toBe(true);
                expect(env.jwtSecret).toBeNull();
              }
              if (!env.demoMode) expect(env.jwtSecret).toBe(JWT_SECRET);
            }
    expect(started).toBeGreaterThan(10);
  });
});

describe('issue 24.11: token lifetime and iss/aud settings', () => {
  it('JWT_MAX_AGE defaults to 24 h and reads durations; JWT_ISSUER / JWT_AUDIENCE are optional', () => {
    expect(parseGatewayEnv({})).toMatchObject({ jwtMaxAgeSeconds: 86_400, jwtIssuer: null, jwtAudience: null });
    expect(parseGatewayEnv({ JWT_MAX_AGE: '30m', JWT_ISSUER: 'https://auth.example', JWT_AUDIENCE: 'keyrack' })).toMatchObject({
      jwtMaxAgeSeconds: 1800,
      jwtIssuer: 'https://auth.example',
      jwtAudience: 'keyrack',
    });
    expect(parseGatewayEnv({ JWT_MAX_AGE: '7d' }).jwtMaxAgeSeconds).toBe(7 * 86_400);
    expect(parseGatewayEnv({ JWT_MAX_AGE: '3600' }).jwtMaxAgeSeconds).toBe(3600);
  });

  it('refuses a bad JWT_MAX_AGE, JWT_ISSUER or JWT_AUDIENCE by name, without echoing it', () => {
    const error = errorOf(() => parseGatewayEnv({ JWT_MAX_AGE: 'forever', JWT_ISSUER: 'has spaces in it', JWT_AUDIENCE: 'x'.repeat(201) }));
    expect(error.problems.map((p) => p.variable).sort()).toEqual(['JWT_AUDIENCE', 'JWT_ISSUER', 'JWT_MAX_AGE']);
    expect(error.message).not.toContain('forever');
    expect(errorOf(() => parseGatewayEnv({ JWT_MAX_AGE: '30' })).problems.map((p) => p.variable)).toEqual(['JWT_MAX_AGE']);
    expect(errorOf(() => parseGatewayEnv({ JWT_MAX_AGE: '400d' })).problems.map((p) => p.variable)).toEqual(['JWT_MAX_AGE']);
  });
});

describe('issue 23: DATABASE_URL', () => {
  it('issue 23: takes postgres:// and postgresql:// URLs, refuses anything else naming the variable and never printing the value', () => {
    const JWT = { JWT_SECRET };
    expect(parseGatewayEnv(JWT).databaseUrl).toBeNull();
    expect(parseGatewayEnv({ ...JWT, DATABASE_URL: 'postgres://keyrack:pw-test-only@db:5432/keyrack' }).databaseUrl).toBe('postgres://keyrack:pw-test-only@db:5432/keyrack');
    expect(parseGatewayEnv({ ...JWT, DATABASE_URL: ' postgresql://db/keyrack ' }).databaseUrl).toBe('postgresql://db/keyrack');
    for (const bad of ['mysql://keyrack:pw-test-only@db/keyrack', 'keyrack:pw-test-only@db', 'postgres://has space:pw-test-only@db']) {
      const error = errorOf(() => parseGatewayEnv({ ...JWT, DATABASE_URL: bad }));
      expect(error.problems.map((p) => p.variable)).toEqual(['DATABASE_URL']);
      expect(error.message).not.toContain('pw-test-only');
    }
  });

  it('issue 23: DATABASE_URL is a deployment setting: with it alone the instance is not a demo and asks for JWT_SECRET', () => {
    expect(errorOf(() => parseGatewayEnv({ DATABASE_URL: 'postgres://db/keyrack' })).problems.map((p) => p.variable)).toEqual(['JWT_SECRET']);
    expect(parseGatewayEnv({ JWT_SECRET, DATABASE_URL: 'postgres://db/keyrack' }).demoMode).toBe(false);
  });
});
