import { z } from 'zod';
import { PROVIDERS, ROTATION_STRATEGIES, type ProviderId, type RotationStrategy } from '../../shared';

/**
 * Reads secrets and per-deployment settings from the environment, and nowhere else.
 * Business config (models, prices, limits) lives in the store; see server/business.
 *
 * Error messages name variables, never their values: a typo in a key must not print the key.
 */

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly { variable: string; problem: string }[]) {
    super(
      'Invalid environment:\n' + problems.map((p) => `  - ${p.variable}: ${p.problem}`).join('\n'),
    );
  }
}

/** Default per-key limits when `<P>_RPM_PER_KEY` / `<P>_TPM_PER_KEY` are unset: the providers' entry paid tiers. */
export const DEFAULT_LIMITS: Record<ProviderId, { rpm: number; tpm: number }> = {
  openai: { rpm: 500, tpm: 30_000 },
  anthropic: { rpm: 50, tpm: 30_000 },
  google: { rpm: 150, tpm: 1_000_000 },
  mistral: { rpm: 60, tpm: 500_000 },
  perplexity: { rpm: 50, tpm: 0 },
  deepseek: { rpm: 0, tpm: 0 }, // DeepSeek publishes no fixed rate limit
  groq: { rpm: 30, tpm: 6_000 },
  xai: { rpm: 60, tpm: 100_000 },
  kimi: { rpm: 200, tpm: 128_000 },
};

export interface EnvKey {
  /** The variable it came from, e.g. `OPENAI_API_KEY_2`: safe to print. */
  variable: string;
  secret: string;
  /** Shared-limit group from `<P>_API_KEY_<n>_ACCOUNT`; null = the key is its own account. */
  account: string | null;
}

export interface ProviderEnv {
  provider: ProviderId;
  keys: EnvKey[];
  baseUrl: string | null;
  rpmPerKey: number;
  tpmPerKey: number;
  strategy: RotationStrategy;
  /** `<P>_QUEUE_MAX`: most requests waiting for a key at once, across instances (issue 22). */
  queueMax: number;
  /** `<P>_QUEUE_MAX_WAIT_MS`: longest wait for a key; 0 (the default) = requests do not wait. */
  queueMaxWaitMs: number;
}

export interface GatewayEnv extends TokenEnv {
  port: number;
  host: string;
  redisUrl: string | null;
  /**
   * REDIS_CLUSTER=1: REDIS_URL names a seed node of a Redis Cluster (issue 22). True as well for
   * a `redis+cluster://host:port,host:port` REDIS_URL.
   */
  redisCluster: boolean;
  redisPrefix: string;
  /**
   * DATABASE_URL (postgres:// or postgresql://): PostgreSQL is then the database of record for
   * business config, the model catalog and BYOK records (issue 23). It may hold a password:
   * never print it (server/db/createPgPool.ts redactedDatabaseUrl for log lines).
   */
  databaseUrl: string | null;
  jwtSecret: string | null;
  encryptionKey: Buffer | null;
  encryptionKeyPrevious: Buffer | null;
  corsOrigins: string[];
  metricsToken: string | null;
  shutdownGraceMs: number;
  /** chat.stream subscriptions one user may hold on one instance at once (MAX_STREAMS_PER_USER). */
  maxStreamsPerUser: number;
  maxAttempts: number;
  requestTimeoutMs: number;
  /** UPSTREAM_FIRST_BYTE_TIMEOUT_MS: a streamed upstream call with no response headers by then is retried on another key. */
  firstByteTimeoutMs: number;
  /** LEARN_LIMITS (default on): pace keys by the rate limits their providers' answers state (issue 22). */
  learnLimits: boolean;
  envFile: string;
  logLevel: string;
  mockProviderPort: number;
  /** Every provider, with or without keys (a provider without keys has an empty pool). */
  providers: ProviderEnv[];
  /**
   * The built-in mock provider serves, with made-up keys: KEYRACK_DEMO=1, or nothing a real
   * deployment sets (no provider key, JWT_SECRET, ENCRYPTION_KEY(_PREVIOUS) nor REDIS_URL).
   * Never inferred from missing keys alone: an instance whose env file was not mounted, or a
   * BYOK-only deployment, is not a demo (issue 24.1).
   */
  demoMode: boolean;
  /**
   * `POST /dev/token` (unauthenticated tokens for the demo's login): demo mode without
   * JWT_SECRET only, so tokens it mints die with the process. With JWT_SECRET set nothing can
   * mint a token but whoever holds the secret, whatever KEYRACK_DEMO says.
   */
  devTokens: boolean;
}

/** Variables only a real deployment sets: any of them (or a provider key) means "not a demo". */
const DEPLOYMENT_VARIABLES = ['JWT_SECRET', 'ENCRYPTION_KEY', 'ENCRYPTION_KEY_PREVIOUS', 'REDIS_URL', 'DATABASE_URL'] as const;

/** A day: long enough for a working session, short enough that a leaked token dies soon. */
export const DEFAULT_JWT_MAX_AGE_SECONDS = 24 * 3600;

const DURATION_UNITS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `90`, `90s`, `30m`, `24h`, `7d` as seconds; null when it is none of these. */
export function parseDurationSeconds(value: string): number | null {
  const match = /^(\d{1,9})([smhd]?)$/.exec(value.trim());
  if (!match) return null;
  return Number(match[1]) * DURATION_UNITS[(match[2] || 's') as keyof typeof DURATION_UNITS];
}

const durationSchema = (minSeconds: number, maxSeconds: number) =>
  z.string().transform((value, ctx) => {
    const seconds = parseDurationSeconds(value);
    if (seconds === null || seconds < minSeconds || seconds > maxSeconds) {
      ctx.addIssue({ code: 'custom', message: `must be a duration such as 30m, 24h or 7d (seconds without a unit), from ${minSeconds} s to ${maxSeconds / 86_400} days` });
      return z.NEVER;
    }
    return seconds;
  });

/** A JWT `iss` / `aud` value: printable, no white space (it is compared exactly). */
const claimValueSchema = z.string().trim().regex(/^[\x21-\x7e]{1,200}$/, 'must be 1-200 printable characters without spaces');

/** The token settings, shared by the gateway and `npm run token` (mintTokenCli.ts). */
export interface TokenEnv {
  /** JWT_ISSUER / JWT_AUDIENCE: put into tokens we mint and required of tokens we accept; null = not checked. */
  jwtIssuer: string | null;
  jwtAudience: string | null;
  /** JWT_MAX_AGE: a token issued (`iat`) longer ago is refused, whatever its `exp` says. */
  jwtMaxAgeSeconds: number;
}

type Env = Record<string, string | undefined>;

const intSchema = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const urlSchema = z.string().trim().url('must be a URL such as https://host/path');

/** A 32-byte key written as 64 hex characters or as base64. */
const encryptionKeySchema = z
  .string()
  .trim()
  .transform((value, ctx) => {
    const bytes = /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
    if (bytes.length !== 32) {
      ctx.addIssue({ code: 'custom', message: 'must be 32 bytes, as 64 hex characters or base64' });
      return z.NEVER;
    }
    return bytes;
  });

const KEY_VARIABLE = /^(?<prefix>[A-Z_]+?)_API_KEY(?:_(?<n>\d+))?$/;

type Problems = { variable: string; problem: string }[];

/** Reads one variable with a schema; unset or blank = the fallback; a bad value is a problem named by its variable. */
function readerOf(env: Env, problems: Problems) {
  return function read<T>(variable: string, schema: z.ZodType<T>, fallback: T): T {
    const raw = env[variable];
    if (raw === undefined || raw.trim() === '') return fallback;
    const parsed = schema.safeParse(raw);
    if (parsed.success) return parsed.data;
    // zod messages describe the expected shape; they never echo the input.
    problems.push({ variable, problem: parsed.error.issues.map((i) => i.message).join('; ') });
    return fallback;
  };
}

function readTokenEnv(read: ReturnType<typeof readerOf>): TokenEnv {
  return {
    jwtIssuer: read<string | null>('JWT_ISSUER', claimValueSchema, null),
    jwtAudience: read<string | null>('JWT_AUDIENCE', claimValueSchema, null),
    jwtMaxAgeSeconds: read('JWT_MAX_AGE', durationSchema(60, 365 * 86_400), DEFAULT_JWT_MAX_AGE_SECONDS),
  };
}

/** JWT_ISSUER, JWT_AUDIENCE and JWT_MAX_AGE alone (`npm run token` mints what the gateway accepts). */
export function parseTokenEnv(env: Env): TokenEnv {
  const problems: Problems = [];
  const tokenEnv = readTokenEnv(readerOf(env, problems));
  if (problems.length > 0) throw new ConfigError(problems);
  return tokenEnv;
}

export interface ParseGatewayEnvOptions {
  /**
   * Default true. False only for maintenance commands that serve no request and verify no token
   * (`npm run rotate-encryption-key`): they read the same deployment without its JWT_SECRET.
   */
  requireJwtSecret?: boolean;
}

export function parseGatewayEnv(env: Env, options: ParseGatewayEnvOptions = {}): GatewayEnv {
  const problems: Problems = [];
  const read = readerOf(env, problems);
  const isSet = (variable: string) => (env[variable]?.trim() ?? '') !== '';

  const seenSecrets = new Map<string, string>();
  const providers: ProviderEnv[] = PROVIDERS.map(({ id, envPrefix }) => {
    const keys: EnvKey[] = [];
    for (const [variable, raw] of Object.entries(env)) {
      const match = KEY_VARIABLE.exec(variable);
      if (!match || match.groups?.prefix !== envPrefix || raw === undefined) continue;
      const secret = raw.trim();
      if (secret === '') continue;
      if (/\s/.test(secret)) {
        problems.push({ variable, problem: 'contains white space' });
        continue;
      }
      const earlier = seenSecrets.get(secret);
      if (earlier) {
        problems.push({ variable, problem: `duplicate key: the same value as ${earlier}` });
        continue;
      }
      seenSecrets.set(secret, variable);
      const accountVariable = `${variable}_ACCOUNT`;
      const account = read(accountVariable, z.string().trim().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 letters, digits, . _ -'), '');
      keys.push({ variable, secret, account: account === '' ? null : account });
    }
    keys.sort((a, b) => keyOrder(a.variable) - keyOrder(b.variable));
    const defaults = DEFAULT_LIMITS[id];
    return {
      provider: id,
      keys,
      baseUrl: read<string | null>(`${envPrefix}_BASE_URL`, urlSchema, null),
      rpmPerKey: read(`${envPrefix}_RPM_PER_KEY`, intSchema(0, 100_000_000), defaults.rpm),
      tpmPerKey: read(`${envPrefix}_TPM_PER_KEY`, intSchema(0, 1_000_000_000_000), defaults.tpm),
      strategy: read<RotationStrategy>(
        `${envPrefix}_STRATEGY`,
        z.enum(ROTATION_STRATEGIES, { error: `must be one of: ${ROTATION_STRATEGIES.join(', ')}` }),
        'round-robin',
      ),
      queueMax: read(`${envPrefix}_QUEUE_MAX`, intSchema(0, 100_000), 100),
      queueMaxWaitMs: read(`${envPrefix}_QUEUE_MAX_WAIT_MS`, intSchema(0, 600_000), 0),
    };
  });

  const jwtSecret = read<string | null>(
    'JWT_SECRET',
    z.string().min(32, 'must be at least 32 characters'),
    null,
  );
  const requestTimeoutMs = read('REQUEST_TIMEOUT_MS', intSchema(100, 600_000), 60_000);
  const hasProviderKeys = providers.some((p) => p.keys.length > 0);
  // Demo mode is asked for, or the environment holds nothing a deployment sets (`npm start` on
  // a fresh clone). Missing keys alone never mean demo: that once made an instance whose env
  // file was not mounted hand out admin tokens signed with the production secret (issue 24.1).
  const demoFlag = read<boolean | null>(
    'KEYRACK_DEMO',
    z.string().trim().pipe(z.enum(['1', '0', 'true', 'false'], { error: 'must be 1 or 0' })).transform((v) => v === '1' || v === 'true'),
    null,
  );
  const demoMode = demoFlag ?? !(hasProviderKeys || DEPLOYMENT_VARIABLES.some(isSet));
  const config: GatewayEnv = {
    port: read('PORT', intSchema(0, 65_535), 3002),
    host: read('HOST', z.string().trim().min(1), '127.0.0.1'),
    redisUrl: read<string | null>(
      'REDIS_URL',
      z
        .string()
        .trim()
        .regex(/^rediss?(?:\+cluster)?:\/\/[^\s]+$/, 'must start with redis:// or rediss:// (a cluster: redis+cluster://host:port,host:port,...)'),
      null,
    ),
    redisCluster: redisClusterFlag(read),
    // zod's regex message is fixed text: a malformed URL (password and all) is never echoed.
    databaseUrl: read<string | null>('DATABASE_URL', z.string().trim().regex(/^postgres(?:ql)?:\/\/[^\s]+$/, 'must start with postgres:// or postgresql://'), null),
    redisPrefix: read('REDIS_PREFIX', z.string().trim().regex(/^[A-Za-z0-9._-]{1,40}$/, 'must be 1-40 letters, digits, . _ -'), 'keyrack'),
    jwtSecret,
    encryptionKey: read<Buffer | null>('ENCRYPTION_KEY', encryptionKeySchema, null),
    encryptionKeyPrevious: read<Buffer | null>('ENCRYPTION_KEY_PREVIOUS', encryptionKeySchema, null),
    corsOrigins: read('CORS_ORIGINS', z.string().transform((s) => s.split(',').map((o) => o.trim()).filter(Boolean)), []),
    metricsToken: read<string | null>('METRICS_TOKEN', z.string().min(16, 'must be at least 16 characters'), null),
    shutdownGraceMs: read('SHUTDOWN_GRACE_MS', intSchema(0, 600_000), 10_000),
    maxStreamsPerUser: read('MAX_STREAMS_PER_USER', intSchema(1, 1_000_000), 20),
    maxAttempts: read('MAX_ATTEMPTS', intSchema(1, 10), 3),
    requestTimeoutMs,
    // Within REQUEST_TIMEOUT_MS, so a key that stalls leaves time to try another (issue 24.11).
    firstByteTimeoutMs: read('UPSTREAM_FIRST_BYTE_TIMEOUT_MS', intSchema(100, 600_000), Math.min(15_000, requestTimeoutMs)),
    learnLimits: read('LEARN_LIMITS', z.string().trim().pipe(z.enum(['1', '0', 'true', 'false'], { error: 'must be 1 or 0' })).transform((v) => v === '1' || v === 'true'), true),
    envFile: read('ENV_FILE', z.string().min(1), '.env'),
    logLevel: read('LOG_LEVEL', z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info'),
    mockProviderPort: read('MOCK_PROVIDER_PORT', intSchema(0, 65_535), 4010),
    providers,
    demoMode,
    devTokens: demoMode && !isSet('JWT_SECRET'),
    ...readTokenEnv(read),
  };

  if (config.firstByteTimeoutMs > config.requestTimeoutMs) {
    problems.push({ variable: 'UPSTREAM_FIRST_BYTE_TIMEOUT_MS', problem: 'must not exceed REQUEST_TIMEOUT_MS' });
  }
  if (demoMode && hasProviderKeys) {
    problems.push({ variable: 'KEYRACK_DEMO', problem: 'demo mode serves the built-in mock provider only: unset KEYRACK_DEMO or the provider keys' });
  }
  if (!demoMode && !isSet('JWT_SECRET') && options.requireJwtSecret !== false) {
    problems.push({
      variable: 'JWT_SECRET',
      problem: hasProviderKeys
        ? 'is required when provider keys are set (at least 32 characters)'
        : `is required outside demo mode (at least 32 characters); demo mode is KEYRACK_DEMO=1, or none of provider keys, ${DEPLOYMENT_VARIABLES.join(', ')} set`,
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** `<P>_API_KEY` first, then `_1`, `_2`, ... in numeric order (gaps allowed). */
function keyOrder(variable: string): number {
  const n = KEY_VARIABLE.exec(variable)?.groups?.n;
  return n === undefined ? 0 : Number(n);
}

/** REDIS_CLUSTER (1/0) or a redis+cluster:// REDIS_URL (issue 22). */
function redisClusterFlag(read: ReturnType<typeof readerOf>): boolean {
  const flag = read<boolean>(
    'REDIS_CLUSTER',
    z.string().trim().pipe(z.enum(['1', '0', 'true', 'false'], { error: 'must be 1 or 0' })).transform((v) => v === '1' || v === 'true'),
    false,
  );
  const url = read<string | null>('REDIS_URL', z.string().trim(), null);
  return flag || (url !== null && /^rediss?\+cluster:\/\//i.test(url));
}
