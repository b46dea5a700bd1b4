import { spawn } from 'node:child_process';

/**
 * Runs one of the repository's command-line entry points under tsx with only `env` (and PATH),
 * and collects what it prints (stdout and stderr together) and its exit code. ENV_FILE and
 * DOTENV_CONFIG_PATH name no file, so a developer's .env is never read.
 */
export function runCli(script: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      env: { PATH: process.env.PATH ?? '', ENV_FILE: '/nonexistent/.env', DOTENV_CONFIG_PATH: '/nonexistent/.env', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, out }));
  });
}
