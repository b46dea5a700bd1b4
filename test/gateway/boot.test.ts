import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildServer, DEFAULT_OUT_DIR, startCommand } from '../../scripts/buildServer';

/**
 * `npm start` as a user runs it: the real entry point in a child process, in demo mode, both
 * as production runs it (the esbuild bundle under plain node, built by the same script
 * `npm start` runs) and from source under tsx (`npm run dev`).
 */

const baseEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ENV_FILE: '/nonexistent/.env', PORT: '0', MOCK_PROVIDER_PORT: '0' };

const children: ChildProcess[] = [];
// A failed assertion must not leave a gateway running.
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

// Its own folder under dist/ (the bundle resolves node_modules upwards, so it stays in the repository).
const outDir = join(DEFAULT_OUT_DIR, `boot-test-${process.pid}`);
let bundle = '';
beforeAll(async () => {
  ({ mainFile: bundle } = await buildServer({ outDir }));
});
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

const RUNTIMES = [
  { name: 'compiled bundle (npm start)', args: () => [...startCommand().nodeFlags, bundle], env: () => startCommand().env },
  { name: 'source under tsx (npm run dev)', args: () => ['--import', 'tsx', 'server/main.ts'], env: () => ({}) },
];

describe.each(RUNTIMES)('server/main.ts as $name', ({ args, env: runtimeEnv }) => {
  function startMain(env: Record<string, string>) {
    const child = spawn(process.execPath, args(), { env: { ...runtimeEnv(), ...baseEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    return child;
  }

  it('boots in demo mode, says so in one line, serves /healthz and stops on SIGTERM', async () => {
    const child = startMain({});
    const lines: string[] = [];
    const url = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${lines.join('\n')}`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        lines.push(line);
        const match = /Keyrack gateway listening on (http:\/\/[\w.:\[\]-]+)/.exec(line);
        if (match) resolve(match[1]!);
      });
    });
    expect(lines.filter((l) => l.includes('DEMO MODE'))).toHaveLength(1);
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ ok: true });
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
  });

  it('a bad environment names the variable, never its value, and exits 1', async () => {
    const child = startMain({ PORT: 'not-a-port', OPENAI_API_KEY_1: 'sk-test-has space' });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = await once(child, 'exit');
    expect(code).toBe(1);
    expect(stderr).toContain('PORT');
    expect(stderr).toContain('OPENAI_API_KEY_1');
    expect(stderr).not.toContain('not-a-port');
    expect(stderr).not.toContain('has space');
  });

  it('issue 24.1: a keyless instance whose secrets were not mounted (REDIS_URL only) does not start a demo: it exits 1 naming JWT_SECRET', async () => {
    const child = startMain({ REDIS_URL: 'redis://127.0.0.1:1' });
    let output = '';
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    // Either it exits, or it starts listening (the bug): then stop it and fail.
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (exitCode) => resolve(exitCode));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        output += line + '\n';
        if (line.includes('listening on')) child.kill('SIGKILL');
      });
    });
    expect(code).toBe(1);
    expect(output).toMatch(/JWT_SECRET: is required outside demo mode/);
    expect(output).not.toContain('DEMO MODE');
  });
});
