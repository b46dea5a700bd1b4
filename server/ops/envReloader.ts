import { readFile } from 'node:fs/promises';
import type { ProviderId } from '../../shared';
import { ConfigError, parseGatewayEnv, type GatewayEnv } from '../config/env';
import { parseEnvFile } from '../config/envFile';
import type { Logger } from '../observability/logger';
import { PoolConfigError, poolConfigsFromEnv, type KeyPool } from '../pool/KeyPool';
import { fingerprintOf, maskOf } from '../pool/keyIdentity';

/**
 * Key rotation without a restart (issue #7): re-read the environment file, validate it the way
 * start-up does, and hand the pool its new keys. Key state lives in the store by fingerprint,
 * so unchanged keys keep their counters and cooldowns and a returning key its history.
 *
 * Only the key pools change; other settings (PORT, REDIS_URL, ...) need a restart and are
 * named in `restartRequired`.
 */
type Env = Record<string, string | undefined>;

export interface KeyRef {
  fingerprint: string;
  mask: string;
}

export interface ProviderKeyChanges {
  provider: ProviderId;
  added: KeyRef[];
  removed: KeyRef[];
  unchanged: KeyRef[];
}

export type ReloadReport =
  | {
      ok: true;
      /** Providers that had or have keys. */
      providers: ProviderKeyChanges[];
      /** Variables set both in the file and in the process environment: the process value wins, as at start-up. */
      shadowed: string[];
      /** Variables outside the key pools whose value changed: they apply at the next restart. */
      restartRequired: string[];
    }
  /** Nothing changed. Problems name variables, never values. */
  | { ok: false; problems: { variable: string; problem: string }[] };

export interface EnvReloaderOptions {
  pool: KeyPool;
  /** ENV_FILE, default `.env`. */
  envFile: string;
  /**
   * The process environment without what came from the file: snapshot `{ ...process.env }`
   * before dotenv loads the file (or use baseEnvOf). A key deleted from the file then really goes.
   */
  baseEnv: Env;
  /** The environment the pool was built from at start-up. */
  current: GatewayEnv;
  logger?: Logger;
  /** After a successful reload, with the new environment (e.g. to rebuild adapters for new base URLs). */
  onApplied?: (env: GatewayEnv, report: Extract<ReloadReport, { ok: true }>) => void;
}

export interface EnvReloader {
  /** Re-read and apply; concurrent calls run one after another. */
  reload(): Promise<ReloadReport>;
  current(): GatewayEnv;
}

/** Settings read at start-up only; a change is reported, not applied. */
const RESTART_SETTINGS: (keyof GatewayEnv)[] = [
  'port',
  'host',
  'redisUrl',
  'redisCluster',
  'redisPrefix',
  'databaseUrl',
  'jwtSecret',
  'jwtIssuer',
  'jwtAudience',
  'jwtMaxAgeSeconds',
  'demoMode',
  'encryptionKey',
  'encryptionKeyPrevious',
  'corsOrigins',
  'metricsToken',
  'shutdownGraceMs',
  'maxStreamsPerUser',
  'maxAttempts',
  'requestTimeoutMs',
  'firstByteTimeoutMs',
  'envFile',
  'logLevel',
  'mockProviderPort',
];
const VARIABLE_OF: Partial<Record<keyof GatewayEnv, string>> = {
  port: 'PORT',
  host: 'HOST',
  redisUrl: 'REDIS_URL',
  redisCluster: 'REDIS_CLUSTER',
  redisPrefix: 'REDIS_PREFIX',
  databaseUrl: 'DATABASE_URL',
  jwtSecret: 'JWT_SECRET',
  jwtIssuer: 'JWT_ISSUER',
  jwtAudience: 'JWT_AUDIENCE',
  jwtMaxAgeSeconds: 'JWT_MAX_AGE',
  demoMode: 'KEYRACK_DEMO',
  encryptionKey: 'ENCRYPTION_KEY',
  encryptionKeyPrevious: 'ENCRYPTION_KEY_PREVIOUS',
  corsOrigins: 'CORS_ORIGINS',
  metricsToken: 'METRICS_TOKEN',
  shutdownGraceMs: 'SHUTDOWN_GRACE_MS',
  maxStreamsPerUser: 'MAX_STREAMS_PER_USER',
  maxAttempts: 'MAX_ATTEMPTS',
  requestTimeoutMs: 'REQUEST_TIMEOUT_MS',
  firstByteTimeoutMs: 'UPSTREAM_FIRST_BYTE_TIMEOUT_MS',
  envFile: 'ENV_FILE',
  logLevel: 'LOG_LEVEL',
  mockProviderPort: 'MOCK_PROVIDER_PORT',
};

/**
 * The process environment minus the variables the file supplied (same name and value), for a
 * gateway that loaded the file into process.env without keeping a snapshot first.
 */
export function baseEnvOf(processEnv: Env, fileText: string): Env {
  const fromFile = parseEnvFile(fileText).values;
  const base: Env = {};
  for (const [name, value] of Object.entries(processEnv)) {
    if (fromFile[name] !== undefined && fromFile[name] === value) continue;
    base[name] = value;
  }
  return base;
}

export function createEnvReloader(options: EnvReloaderOptions): EnvReloader {
  const { pool, envFile, baseEnv, logger } = options;
  let current = options.current;
  let queue: Promise<unknown> = Promise.resolve();

  async function reloadNow(): Promise<ReloadReport> {
    let text: string;
    try {
      text = await readFile(envFile, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return refuse([{ variable: 'ENV_FILE', problem: code === 'ENOENT' ? 'file not found' : `cannot be read (${code ?? 'error'})` }]);
    }
    const { values: fromFile, problems: fileProblems } = parseEnvFile(text);
    // The file does not override the process environment at start-up; neither does a reload.
    const merged: Env = { ...fromFile, ...baseEnv };
    const shadowed = Object.keys(fromFile).filter((name) => baseEnv[name] !== undefined).sort();
    let next: GatewayEnv;
    try {
      next = parseGatewayEnv(merged);
    } catch (error) {
      if (error instanceof ConfigError) return refuse([...fileProblems, ...error.problems]);
      throw error;
    }
    if (fileProblems.length > 0) return refuse(fileProblems);
    try {
      pool.setPools(poolConfigsFromEnv(next));
    } catch (error) {
      if (error instanceof PoolConfigError) return refuse(error.problems.map((p) => ({ variable: p.path, problem: p.problem })));
      throw error;
    }
    const report: Extract<ReloadReport, { ok: true }> = {
      ok: true,
      providers: diffKeys(current, next),
      shadowed,
      restartRequired: RESTART_SETTINGS.filter((name) => !sameValue(current[name], next[name])).map((name) => VARIABLE_OF[name] ?? name),
    };
    current = next;
    logger?.info(
      {
        providers: report.providers.map((p) => ({ provider: p.provider, added: p.added.map((k) => k.mask), removed: p.removed.map((k) => k.mask), unchanged: p.unchanged.length })),
        shadowed,
        restartRequired: report.restartRequired,
      },
      'environment reloaded: key pools updated',
    );
    options.onApplied?.(next, report);
    return report;
  }

  function refuse(problems: { variable: string; problem: string }[]): ReloadReport {
    logger?.warn({ problems }, 'environment reload refused: nothing changed');
    return { ok: false, problems };
  }

  return {
    reload() {
      const run = queue.then(reloadNow, reloadNow);
      queue = run.catch(() => undefined);
      return run;
    },
    current: () => current,
  };
}

function diffKeys(before: GatewayEnv, after: GatewayEnv): ProviderKeyChanges[] {
  const changes: ProviderKeyChanges[] = [];
  for (const next of after.providers) {
    const previous = before.providers.find((p) => p.provider === next.provider);
    const old = new Map((previous?.keys ?? []).map((k) => [fingerprintOf(k.secret), maskOf(k.secret)]));
    const now = new Map(next.keys.map((k) => [fingerprintOf(k.secret), maskOf(k.secret)]));
    if (old.size === 0 && now.size === 0) continue;
    const ref = ([fingerprint, mask]: [string, string]): KeyRef => ({ fingerprint, mask });
    changes.push({
      provider: next.provider,
      added: [...now].filter(([f]) => !old.has(f)).map(ref),
      removed: [...old].filter(([f]) => !now.has(f)).map(ref),
      unchanged: [...now].filter(([f]) => old.has(f)).map(ref),
    });
  }
  return changes;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return JSON.stringify(a) === JSON.stringify(b);
}
