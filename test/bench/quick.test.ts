import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The benchmark itself still runs (issue #8): `npm run bench -- --quick` starts every process,
 * measures all six sections with tiny counts, prints the table and stops everything. No
 * figure is asserted: timings on a shared CI box mean nothing. `--no-write` keeps
 * BENCHMARKS.md as the last full run left it.
 */
it('npm run bench -- --quick runs every section and prints the table', async () => {
  const child = spawn('npm', ['run', 'bench', '--', '--quick', '--no-write'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));

  expect(code, `bench failed:\n${stderr.slice(-3000)}\n${stdout.slice(-3000)}`).toBe(0);
  expect(stdout).toMatch(/^# \| Measure/m);
  for (const section of [1, 2, 3, 4, 5, 6]) expect(stdout).toMatch(new RegExp(`^${section} \\| `, 'm'));
  expect(stdout).not.toMatch(/not measured/);
}, 120_000);
