import { parseArgs } from 'node:util';
import { userRoleSchema } from '../../shared/api';
import { ConfigError, parseTokenEnv } from '../config/env';
import { loadEnvFile } from '../config/loadEnvironment';
import { TokenLifetimeError, TokenService } from './tokens';

/**
 * `npm run token -- --sub alice [--role admin] [--ttl 1h]`: prints a development token signed
 * with JWT_SECRET from the environment or .env (ENV_FILE), carrying JWT_ISSUER / JWT_AUDIENCE when
 * set; a --ttl over JWT_MAX_AGE (default 24h) is refused.
 */
async function main(): Promise<number> {
  const fileProblems = loadEnvFile(process.env.ENV_FILE ?? '.env');
  if (fileProblems.length > 0) {
    console.error(new ConfigError(fileProblems).message);
    return 2;
  }
  const { values } = parseArgs({
    options: {
      sub: { type: 'string' },
      role: { type: 'string', default: 'user' },
      ttl: { type: 'string', default: '1h' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const usage = 'usage: npm run token -- --sub <user id> [--role user|admin] [--ttl 1h]';
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (!values.sub) {
    console.error(usage);
    return 2;
  }
  const role = userRoleSchema.safeParse(values.role);
  if (!role.success) {
    console.error(`--role must be user or admin\n${usage}`);
    return 2;
  }
  if (!/^\d+[smhd]$/.test(values.ttl)) {
    console.error(`--ttl must look like 30m, 1h or 7d\n${usage}`);
    return 2;
  }
  const secret = process.env.JWT_SECRET?.trim();
  if (!secret) {
    console.error(
      'JWT_SECRET is not set. In demo mode the gateway makes up a secret per process, so no token\n' +
        'minted here could match it: sign in through the demo page (it uses POST /dev/token), or set\n' +
        'JWT_SECRET in .env (openssl rand -base64 48) and restart the gateway.',
    );
    return 1;
  }
  if (secret.length < 32) {
    console.error('JWT_SECRET must be at least 32 characters');
    return 1;
  }
  // The gateway's JWT_ISSUER / JWT_AUDIENCE / JWT_MAX_AGE, so the token is one it accepts.
  let tokenEnv;
  try {
    tokenEnv = parseTokenEnv(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    return 2;
  }
  const service = new TokenService(secret, { issuer: tokenEnv.jwtIssuer, audience: tokenEnv.jwtAudience, maxAgeSeconds: tokenEnv.jwtMaxAgeSeconds });
  try {
    console.log(await service.mint({ sub: values.sub, role: role.data }, values.ttl));
  } catch (error) {
    if (!(error instanceof TokenLifetimeError)) throw error;
    console.error(`--ttl ${values.ttl} is longer than JWT_MAX_AGE (${tokenEnv.jwtMaxAgeSeconds} s): the gateway would refuse the token before it expires\n${usage}`);
    return 2;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : 'failed');
    process.exit(1);
  },
);
