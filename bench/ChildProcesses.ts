import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The repository root: children run from here so `tsx` and relative paths resolve. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface BenchChild {
  name: string;
  pid: number;
  process: ChildProcess;
  /** The last few KiB of its stdout and stderr, for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnTsOptions {
  env: Record<string, string>;
  /** Extra flags for node itself, such as `--cpu-prof`. */
  nodeArgs?: string[];
}

const OUTPUT_TAIL = 8_192;

/**
 * Every process the benchmark starts, so one `stopAll()` in a finally block (and on SIGINT)
 * leaves nothing running, whatever failed.
 */
export class ChildProcesses {
  private readonly children: BenchChild[] = [];
  private readonly cleanups: (() => Promise<void>)[] = [];

  /** `node --import tsx <script>` as its own process: its pid is the process we measure. */
  spawnTs(name: string, script: string, options: SpawnTsOptions): BenchChild {
    const child = spawn(process.execPath, ['--import', 'tsx', ...(options.nodeArgs ?? []), script], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return this.track(name, child);
  }

  /** `node <script>` under plain node, for compiled JS (the gateway as `npm start` runs it). */
  spawnNode(name: string, script: string, options: SpawnTsOptions): BenchChild {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return this.track(name, child);
  }

  /** Any other program (redis-server is started through test/support instead). */
  spawnProgram(name: string, command: string, args: string[]): BenchChild {
    return this.track(name, spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  track(name: string, child: ChildProcess): BenchChild {
    if (child.pid === undefined) throw new Error(`${name}: could not start`);
    let tail = '';
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    const entry: BenchChild = {
      name,
      pid: child.pid,
      process: child,
      output: () => tail,
      async stop(graceMs = 5_000) {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      },
    };
    this.children.push(entry);
    return entry;
  }

  /** Runs once every process has stopped (stopAll): removes what they leave behind, such as a throwaway directory. */
  afterStop(cleanup: () => Promise<void>): void {
    this.cleanups.push(cleanup);
  }

  /** `graceMs` per process before SIGKILL (a process writing a CPU profile at exit needs longer). */
  async stopAll(graceMs?: number): Promise<void> {
    const all = this.children.splice(0);
    await Promise.all(all.reverse().map((c) => c.stop(graceMs)));
    await Promise.all(this.cleanups.splice(0).map((cleanup) => cleanup()));
  }

  /** Synchronous last resort for `process.on('exit')`: no waiting, just the signal. */
  killAllNow(): void {
    for (const c of this.children) {
      if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
    }
  }
}

/**
 * Resolves once something accepts TCP connections on the port; rejects if the child exits
 * first (with its output, which says why) or after `timeoutMs`.
 */
export async function waitForPort(child: BenchChild, port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.process.once('exit', () => (exited = true));
  for (;;) {
    if (exited || child.process.exitCode !== null) throw new Error(`${child.name} exited before listening:\n${child.output()}`);
    if (await canConnect(port)) return;
    if (Date.now() > deadline) throw new Error(`${child.name} did not listen on ${port} within ${timeoutMs} ms:\n${child.output()}`);
    // Polling a port is the one wait with nothing to wait on; 50 ms is plenty coarse.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Resident set size of a process in bytes, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Total CPU time (user + system) of a process in seconds, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}
