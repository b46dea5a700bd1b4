import { config as loadDotenv } from 'dotenv';
import { ConfigError, parseGatewayEnv, type GatewayEnv } from './env';

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
export function loadEnvironmentOrExit(exitCode = 1): LoadedEnvironment {
  const baseEnv = { ...process.env };
  loadDotenv({ path: process.env.ENV_FILE ?? '.env', quiet: true });
  try {
    return { env: parseGatewayEnv(process.env), baseEnv };
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(exitCode);
    }
    throw error;
  }
}
