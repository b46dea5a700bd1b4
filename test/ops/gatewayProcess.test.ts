import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TokenService } from '../../server/auth/tokens';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';
import { TEST_JWT_SECRET } from '../support/gatewayHarness';

/** The real entry point (server/main.ts) in a child process: SIGHUP rotation and SIGTERM shutdown. */

const KEY_1 = 'sk-test-process-key-one-000000000001';
const KEY_2 = 'sk-test-process-key-two-000000000002';

let mock: MockProvider;
let dir: string;
const tokens = new TokenService(TEST_JWT_SECRET);
const children: ChildProcess[] = [];

beforeAll(async () => {
  mock = await startMockProvider({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'keyrack-process-'));
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
afterAll(async () => {
  await mock?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  url: string;
  lines: string[];
  /** Resolves with the first log line (from now on) matching. */
  nextLine(match: RegExp): Promise<string>;
}

async function startMain(envFile: string, env: Record<string, string> = {}): Promise<Running> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ENV_FILE: envFile, PORT: '0', HOST: '127.0.0.1', JWT_SECRET: TEST_JWT_SECRET, OPENAI_BASE_URL: mock.baseUrls.openai, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines: string[] = [];
  const waiters: { match: RegExp; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) if (w.match.test(line)) waiters.splice(waiters.indexOf(w), 1) && w.resolve(line);
  });
  child.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
  const nextLine = (match: RegExp) => new Promise<string>((resolve) => waiters.push({ match, resolve }));
  const listening = nextLine(/Keyrack gateway listening on/);
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`exited ${String(code)}: ${lines.join('\n')}`);
  });
  const line = await Promise.race([listening, exited]);
  exited.catch(() => undefined);
  const url = /listening on (http:\/\/[\w.:-]+)/.exec(line)![1]!;
  return { child, url, lines, nextLine };
}

describe('server/main.ts signals', () => {
  it('SIGHUP re-reads ENV_FILE: a key removed from the file leaves the pool', async () => {
    const envFile = join(dir, 'hup.env');
    writeFileSync(envFile, `OPENAI_API_KEY_1=${KEY_1}\nOPENAI_API_KEY_2=${KEY_2}\n`);
    const gw = await startMain(envFile);
    const admin = await tokens.mint({ sub: 'ops', role: 'admin' }, '5m');
    const masks = async () => {
      const status = (await (await fetch(`${gw.url}/admin/api-keys/status`, { headers: { authorization: `Bearer ${admin}` } })).json()) as {
        providers: { provider: string; keys: { mask: string }[] }[];
      };
      return status.providers.find((p) => p.provider === 'openai')!.keys.map((k) => k.mask);
    };
    expect(await masks()).toHaveLength(2);

    writeFileSync(envFile, `OPENAI_API_KEY_2=${KEY_2}\n`);
    const reloaded = gw.nextLine(/SIGHUP: pool reload/);
    gw.child.kill('SIGHUP');
    expect(JSON.parse(await reloaded)).toMatchObject({ ok: true });
    expect(await masks()).toEqual(['sk-…0002']);
    for (const line of gw.lines) for (const secret of [KEY_1, KEY_2, TEST_JWT_SECRET]) expect(line).not.toContain(secret);

    const exited = once(gw.child, 'exit');
    gw.child.kill('SIGTERM');
    expect((await exited)[0]).toBe(0);
  });

  it('SIGTERM: an open stream past SHUTDOWN_GRACE_MS ends with a shutting_down error event, then exit 0', async () => {
    const envFile = join(dir, 'term.env');
    writeFileSync(envFile, `OPENAI_API_KEY=${KEY_1}\n`);
    const gw = await startMain(envFile, { SHUTDOWN_GRACE_MS: '200' });
    // One delta, then the upstream stalls: the stream stays open until shutdown ends it.
    mock.faults.inject(KEY_1, { kind: 'stall', afterChunks: 1 });
    const user = await tokens.mint({ sub: 'streamer', role: 'user' }, '5m');
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'long answer' }] }),
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('"content"')) text += decoder.decode((await reader.read()).value ?? new Uint8Array(), { stream: true });

    const exited = once(gw.child, 'exit');
    gw.child.kill('SIGTERM');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    expect(text).toContain('shutting_down');
    expect((await exited)[0]).toBe(0);
    expect((await fetch(`${gw.url}/healthz`).catch(() => null))?.status ?? 'refused').toBe('refused');
  });
});
