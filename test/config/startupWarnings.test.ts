import { describe, expect, it } from 'vitest';
import { parseGatewayEnv } from '../../server/config/env';
import { startupWarnings } from '../../server/config/startupWarnings';
import { createLogger } from '../../server/observability/logger';
import { captureLines } from '../ops/waitFor';
import { startTestGateway, TEST_JWT_SECRET } from '../support/gatewayHarness';

const KEY = 'sk-test-startup-warnings-000000001';
const METRICS_TOKEN = 'metrics-token-startup-warnings-01';
const JWT_SECRET = TEST_JWT_SECRET;

describe('start-up warnings', () => {
  it('issue 24.11: /metrics open (no METRICS_TOKEN) with real provider keys logs a start-up warning', async () => {
    const logs = captureLines();
    const gw = await startTestGateway({ env: { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' }, logger: createLogger({ level: 'info', destination: logs.destination }) });
    await gw.close();
    const warnings = logs.lines.map((l) => JSON.parse(l) as { level: string; msg: string }).filter((l) => l.level === 'warn');
    expect(warnings.map((w) => w.msg)).toContainEqual(expect.stringMatching(/^METRICS_TOKEN is unset: GET \/metrics is open/));
    expect(logs.lines.join('')).not.toContain(KEY);
  });

  it('none about metrics with METRICS_TOKEN set, nor in demo mode', () => {
    expect(startupWarnings(parseGatewayEnv({ JWT_SECRET, OPENAI_API_KEY: KEY, METRICS_TOKEN }))).toEqual([]);
    expect(startupWarnings(parseGatewayEnv({}))).toEqual([]);
    expect(startupWarnings(parseGatewayEnv({ KEYRACK_DEMO: '1', JWT_SECRET }))).toEqual([]);
  });

  it('says which keyless production mode it is: BYOK-only, or serving no one', () => {
    expect(startupWarnings(parseGatewayEnv({ JWT_SECRET, METRICS_TOKEN, ENCRYPTION_KEY: 'ab'.repeat(32) }))).toEqual([expect.stringMatching(/^no shared provider keys \(BYOK-only\)/)]);
    expect(startupWarnings(parseGatewayEnv({ JWT_SECRET, METRICS_TOKEN }))).toEqual([expect.stringMatching(/no one can be served/)]);
  });
});
