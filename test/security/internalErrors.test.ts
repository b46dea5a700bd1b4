import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger';
import { scrubSecrets } from '../../server/observability/scrubSecrets';
import { INTERNAL_ERROR_MESSAGE } from '../../server/gateway/trpc';
import type { ModelCatalog } from '../../server/business/types';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';
import { captureLines } from '../ops/waitFor';

/**
 * An unexpected failure inside a procedure (here: the model catalog throws) must not put its own
 * message on the wire: that text can hold a key an upstream echoed, a file path or a store
 * reply. The caller gets a generic message with the request id; the log gets the real message,
 * scrubbed of anything key-shaped, under the same request id.
 */

// Built at run time: a literal of this shape in the repository would look like a leaked key.
const LEAKED_KEY = 'sk-' + 'proj-' + 'Q'.repeat(12) + 'leaked' + 'Z'.repeat(12);
const FILE_PATH = '/srv/keyrack/secrets/provider-keys.env';

const brokenCatalog: ModelCatalog = {
  resolve: () => Promise.reject(new Error(`cannot read ${FILE_PATH}: upstream said invalid key ${LEAKED_KEY}`)),
  list: () => Promise.reject(new Error(`cannot read ${FILE_PATH}: upstream said invalid key ${LEAKED_KEY}`)),
};

const logs = captureLines();
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({ catalog: brokenCatalog, logger: createLogger({ level: 'info', destination: logs.destination }) });
});
afterAll(async () => {
  await gw?.close();
});

describe('unexpected failures', () => {
  it('reach the caller as a generic message with the request id, and the log with the real, scrubbed message', async () => {
    const token = await gw.token('carol');
    const response = await fetch(`${gw.url}/trpc/models.list`, { headers: { authorization: `Bearer ${token}`, 'x-request-id': 'req-internal-0001' } });
    expect(response.status).toBe(500);
    const body = await response.text();
    expect(body).not.toContain(LEAKED_KEY);
    expect(body).not.toContain(FILE_PATH);
    expect(body).not.toContain('upstream said');
    const parsed = JSON.parse(body) as { error: { message: string; data: { code: string; requestId?: string } } };
    expect(parsed.error.message).toBe(INTERNAL_ERROR_MESSAGE);
    expect(parsed.error.data).toMatchObject({ code: 'INTERNAL_SERVER_ERROR', requestId: 'req-internal-0001' });

    const failure = logs.lines.find((line) => line.includes('req-internal-0001') && line.includes('procedure failed'));
    expect(failure).toBeDefined();
    expect(failure).toContain(FILE_PATH);
    expect(logs.lines.join('\n')).not.toContain(LEAKED_KEY);
  });

  it('deliberate refusals keep their own message', async () => {
    const token = await gw.token('carol');
    const response = await fetch(`${gw.url}/trpc/pool.status`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('admin role required');
  });

  it('the log scrubber removes every provider key shape and keeps masks and fingerprints', () => {
    const shapes = [
      'sk-' + 'A'.repeat(40),
      'sk-' + 'ant-api03-' + 'b'.repeat(40),
      'AIza' + 'C'.repeat(35),
      'gsk_' + 'd'.repeat(48),
      'xai-' + 'E'.repeat(60),
      'pplx-' + 'f'.repeat(48),
      'Bearer ' + 'g'.repeat(40),
    ];
    for (const shape of shapes) expect(scrubSecrets(`before ${shape} after`), shape.slice(0, 6)).toBe('before [redacted] after');
    expect(scrubSecrets('key sk-…abcd fingerprint 31f55ba6336bc608')).toBe('key sk-…abcd fingerprint 31f55ba6336bc608');
  });
});
