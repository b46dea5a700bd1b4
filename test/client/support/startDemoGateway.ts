import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

// Not import.meta.url: under jsdom, vitest rewrites it to an http URL. Tests run from the repo root.
const ROOT = process.cwd();

export interface DemoGateway {
  /** http://127.0.0.1:PORT */
  url: string;
  /** The mock provider behind it; its control API is under `/_mock`. */
  mock: MockControl;
  /** A token from the demo-only `POST /dev/token`. */
  token(sub: string, role: 'user' | 'admin'): Promise<string>;
  close(): Promise<void>;
}

/** The mock provider's control API over HTTP (see server/mock-provider/handleControlRequest.ts). */
export class MockControl {
  constructor(readonly url: string) {}
  async injectFault(key: string, fault: Record<string, unknown>, options: { sticky?: boolean; times?: number } = {}): Promise<void> {
    await this.#call('POST', '/_mock/faults', { key, fault, ...options });
  }
  async clearFaults(): Promise<void> {
    await this.#call('DELETE', '/_mock/faults');
  }
  async configure(settings: { chunkDelayMs?: number; rpmPerKey?: number | null }): Promise<void> {
    await this.#call('POST', '/_mock/config', settings);
  }
  async totals(): Promise<{ requests: number; aborted: number; completed: number }> {
    const response = await this.#call('GET', '/_mock/stats');
    return ((await response.json()) as { total: { requests: number; aborted: number; completed: number } }).total;
  }
  async #call(method: string, path: string, body?: unknown): Promise<Response> {
    const response = await fetch(this.url + path, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    if (!response.ok) throw new Error(`mock control ${method} ${path}: HTTP ${response.status} ${await response.text()}`);
    return response;
  }
}

/**
 * Starts a gateway in demo mode in a child process (see runDemoGateway.ts). Used by tests that
 * run in jsdom, where server modules cannot load, and by the browser tests.
 */
export async function startDemoGateway(options: { clientDir?: string; chunkDelayMs?: number; poolWatchMs?: number; detachGraceMs?: number } = {}): Promise<DemoGateway> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  if (options.clientDir) env.KEYRACK_TEST_CLIENT_DIR = options.clientDir;
  if (options.chunkDelayMs !== undefined) env.KEYRACK_TEST_CHUNK_DELAY_MS = String(options.chunkDelayMs);
  if (options.poolWatchMs !== undefined) env.KEYRACK_TEST_POOL_WATCH_MS = String(options.poolWatchMs);
  if (options.detachGraceMs !== undefined) env.KEYRACK_TEST_DETACH_GRACE_MS = String(options.detachGraceMs);
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/client/support/runDemoGateway.ts')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const started = await firstLine(child).catch((error: unknown) => {
    throw new Error(`demo gateway did not start: ${String(error)}\n${stderr}`);
  });
  const { url, mockUrl } = JSON.parse(started) as { url: string; mockUrl: string };
  return {
    url,
    mock: new MockControl(mockUrl),
    async token(sub, role) {
      const response = await fetch(`${url}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sub, role }) });
      if (!response.ok) throw new Error(`/dev/token: HTTP ${response.status}`);
      return ((await response.json()) as { token: string }).token;
    },
    async close() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve(line));
    child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
}
