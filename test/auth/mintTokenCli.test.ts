import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TokenService } from '../../server/auth/tokens';

const run = promisify(execFile);
const SECRET = 'test-secret-for-mint-token-cli-0123456789abcdef';
const baseEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ENV_FILE: '/nonexistent/.env' };

describe('npm run token', () => {
  it('prints a token that verifies with JWT_SECRET', async () => {
    const { stdout } = await run('npx', ['tsx', 'server/auth/mintTokenCli.ts', '--sub', 'alice', '--role', 'admin', '--ttl', '5m'], {
      env: { ...baseEnv, JWT_SECRET: SECRET },
    });
    expect(await new TokenService(SECRET).verify(stdout.trim())).toEqual({ ok: true, user: { id: 'alice', role: 'admin' } });
  });

  it('explains what to do when JWT_SECRET is unset (demo mode)', async () => {
    const failed = await run('npx', ['tsx', 'server/auth/mintTokenCli.ts', '--sub', 'alice'], { env: baseEnv }).catch((e: { code: number; stderr: string }) => e);
    expect('code' in failed && failed.code).toBe(1);
    expect((failed as { stderr: string }).stderr).toMatch(/JWT_SECRET is not set.*\n.*\/dev\/token/s);
  });

  it('issue 24.11: carries JWT_ISSUER / JWT_AUDIENCE and refuses a --ttl over JWT_MAX_AGE', async () => {
    const env = { ...baseEnv, JWT_SECRET: SECRET, JWT_ISSUER: 'https://auth.example', JWT_AUDIENCE: 'keyrack', JWT_MAX_AGE: '2h' };
    const [minted, refused] = await Promise.all([
      run('npx', ['tsx', 'server/auth/mintTokenCli.ts', '--sub', 'alice', '--ttl', '90m'], { env }),
      run('npx', ['tsx', 'server/auth/mintTokenCli.ts', '--sub', 'alice', '--ttl', '3h'], { env }).catch((e: { code: number; stderr: string }) => e),
    ]);
    const scoped = new TokenService(SECRET, { issuer: 'https://auth.example', audience: 'keyrack', maxAgeSeconds: 7200 });
    expect(await scoped.verify(minted.stdout.trim())).toEqual({ ok: true, user: { id: 'alice', role: 'user' } });
    expect('code' in refused && refused.code).toBe(2);
    expect((refused as { stderr: string }).stderr).toMatch(/JWT_MAX_AGE/);
  });
});
