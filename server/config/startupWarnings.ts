import type { GatewayEnv } from './env';

/**
 * What a valid but risky environment deserves to be told at start-up (createGateway logs each
 * as a warning). Messages name variables, never values.
 */
export function startupWarnings(env: GatewayEnv): string[] {
  const warnings: string[] = [];
  if (env.demoMode) return warnings; // fake keys and a mock provider: nothing there to protect
  if (!env.metricsToken) {
    // Metrics carry no secret, but they tell anyone who can reach the port how much traffic
    // each provider serves, which keys are cooling or disabled, and the process's memory.
    warnings.push(
      'METRICS_TOKEN is unset: GET /metrics is open to anyone who can reach the gateway; set METRICS_TOKEN (at least 16 characters) or keep the port on a private network',
    );
  }
  if (env.providers.every((p) => p.keys.length === 0)) {
    warnings.push(
      env.encryptionKey
        ? "no shared provider keys (BYOK-only): only users who add their own keys are served; set <P>_API_KEY to serve everyone"
        : 'no provider keys and no ENCRYPTION_KEY: no one can be served (/readyz answers 503); set provider keys, or ENCRYPTION_KEY for BYOK',
    );
  }
  return warnings;
}
