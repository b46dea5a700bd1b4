import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * `npm run build:server`: bundles the gateway (server/main.ts and everything it imports from
 * this repository) into one ESM file, dist/server/main.js, which `npm start` runs under plain
 * `node --enable-source-maps`. Production does not run under tsx: its loader keeps a worker
 * thread with its own V8 isolate alive for the life of the process (~35-45 MB of idle RSS).
 *
 * Packages from node_modules stay external (`packages: 'external'`): node resolves them from
 * dist/server/ upwards, so the bundle must stay inside the repository. defaults.json is inlined
 * by the bundler; the pool store's Lua scripts, which redisStore.ts reads at run time relative
 * to its own URL, are copied next to the bundle (dist/server/lua/).
 */

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_OUT_DIR = join(REPO_ROOT, 'dist');

/** Files read at run time with `new URL('./<dir>/...', import.meta.url)`, copied beside the bundle. */
const RUNTIME_ASSET_DIRS = [{ from: 'server/pool/stores/lua', to: 'server/lua' }];

export interface BuildServerOptions {
  /** Where `server/main.js` goes; default `<repo>/dist`. Must be inside the repository (see above). */
  outDir?: string;
  /** Extra entry points, repository-relative, built beside main.js under the same rules (the bench's probe). */
  extraEntries?: string[];
}

export interface BuiltServer {
  /** Absolute path of the gateway's entry file. */
  mainFile: string;
  /** Absolute paths of the extra entries' output files, in the order given. */
  extraFiles: string[];
}

export async function buildServer(options: BuildServerOptions = {}): Promise<BuiltServer> {
  const outDir = resolve(options.outDir ?? DEFAULT_OUT_DIR);
  if (relative(REPO_ROOT, outDir).startsWith('..')) throw new Error(`buildServer: ${outDir} is outside the repository; the bundle could not resolve node_modules`);
  const entries = ['server/main.ts', ...(options.extraEntries ?? [])];

  const result = await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: entries,
    outbase: REPO_ROOT,
    outdir: outDir,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    // Stack traces point at the TypeScript sources (`node --enable-source-maps`); without the
    // sources' text in the map, which node would otherwise hold in memory for nothing.
    sourcemap: 'linked',
    sourcesContent: false,
    // Two entries must not share chunks: each file runs alone.
    splitting: false,
    logLevel: 'warning',
    write: false,
  });

  // Written beside their final names then renamed, so a process starting from dist/ while the
  // bench or `npm start` rebuilds never reads a half-written file.
  for (const file of result.outputFiles) {
    if (file.path.endsWith('.js')) assertAscii(file.path, file.text);
    writeAtomically(file.path, file.contents);
  }
  for (const { from, to } of RUNTIME_ASSET_DIRS) {
    const source = join(REPO_ROOT, from);
    for (const name of readdirSync(source)) writeAtomically(join(outDir, to, name), readFileSync(join(source, name)));
  }

  const output = (entry: string) => join(outDir, entry.replace(/\.[cm]?tsx?$/, '.js'));
  return { mainFile: output('server/main.ts'), extraFiles: (options.extraEntries ?? []).map(output) };
}

/** How `npm start` runs the bundle: environment set on its command line, then node's flags. */
export interface StartCommand {
  env: Record<string, string>;
  nodeFlags: string[];
}

/**
 * How `npm start` runs the bundle, read from package.json so that whatever runs the gateway
 * "as production does" (the benchmark, the boot test) cannot drift from it: the script must end
 * with `[NAME=value ...] node [--flags ...] dist/server/main.js`.
 */
export function startCommand(): StartCommand {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const start = pkg.scripts?.start ?? '';
  const match = /(?:^|&&\s*)((?:[A-Z_][A-Z0-9_]*=\S+\s+)*)node((?:\s+--[\w-]+(?:=\S+)?)*)\s+dist\/server\/main\.js\s*$/.exec(start);
  if (!match) throw new Error(`package.json scripts.start does not end with "[NAME=value ...] node [flags] dist/server/main.js": ${start}`);
  const words = (text: string) => text.trim().split(/\s+/).filter(Boolean);
  const env = Object.fromEntries(words(match[1]!).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
  return { env, nodeFlags: words(match[2]!) };
}

/**
 * The output must be ASCII: V8 keeps every script's source in the heap, one byte per character
 * only when all of it is ASCII. Two JSDoc comments that esbuild keeps (with an ellipsis) and a
 * regular expression (with the micro sign) made the 318 KB bundle a 620 KiB two-byte string;
 * ASCII, the gateway's old space after start-up went from ~19 to ~15.5 MiB (issue #8). esbuild
 * escapes non-ASCII in string literals itself, not in kept comments or regular expressions.
 */
function assertAscii(path: string, text: string): void {
  const at = text.search(/[^\x00-\x7f]/);
  if (at < 0) return;
  throw new Error(
    `buildServer: ${relative(REPO_ROOT, path)} has a non-ASCII character near ${JSON.stringify(text.slice(Math.max(0, at - 40), at + 10))}; ` +
      'write it as a \\u escape (V8 would hold the whole bundle as a two-byte string)',
  );
}

function writeAtomically(path: string, contents: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, contents);
  renameSync(temporary, path);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildServer().then(
    ({ mainFile }) => process.stdout.write(`built ${relative(REPO_ROOT, mainFile)}\n`),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exit(1);
    },
  );
}
