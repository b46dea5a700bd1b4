import { readFileSync } from 'node:fs';
import { ConfigError, parseGatewayEnv, type GatewayEnv, type ParseGatewayEnvOptions } from './env';
import { parseEnvFile, type EnvFileProblem } from './envFile';

export interface LoadedEnvironment {
  env: GatewayEnv;
  /** The process environment before ENV_FILE was read: what a reload re-reads the file on top of. */
  baseEnv: Record<string, string | undefined>;
}

/**
 * For the command-line entry points: reads ENV_FILE (default `.env`; a missing file is fine;
 * variables already in the environment win), validates, and on a bad environment prints which
 * variables are wrong (never their values) and exits with `exitCode`.
 */
export function loadEnvironmentOrExit(exitCode = 1, options: ParseGatewayEnvOptions = {}): LoadedEnvironment {
  const baseEnv = { ...process.env };
  const problems = loadEnvFile(process.env.ENV_FILE ?? '.env');
  let env: GatewayEnv | undefined;
  try {
    env = parseGatewayEnv(process.env, options);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  if (!env || problems.length > 0) {
    console.error(new ConfigError(problems).message);
    process.exit(exitCode);
  }
  return { env, baseEnv };
}

/**
 * Sets the file's variables that the environment does not already have, as dotenv's config()
 * does (see parseEnvFile for the lines it leaves out); a missing file is fine. Returns the
 * file's problems.
 */
export function loadEnvFile(path: string): EnvFileProblem[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    return [{ variable: 'ENV_FILE', problem: `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})` }];
  }
  const { values, problems } = parseEnvFile(text);
  for (const [name, value] of Object.entries(values)) if (process.env[name] === undefined) process.env[name] = value;
  return problems;
}
