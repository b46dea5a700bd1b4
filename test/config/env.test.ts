import { describe, expect, it } from 'vitest';
import { ConfigError, parseGatewayEnv } from '../../server/config/env';

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
