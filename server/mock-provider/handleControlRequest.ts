import { z } from 'zod';
import type { MockReply } from './mockDialect';
import { mockFaultOptionsSchema, mockFaultSchema } from './mockFault';
import type { MockProvider } from './startMockProvider';

/**
 * The mock's control API, JSON over HTTP under `/_mock`, for a mock running in another process
 * (`npm run mock-provider`, the demo, benchmarks):
 *
 *   GET    /_mock/stats                          counters per key fingerprint and provider
 *   POST   /_mock/reset                          faults, counters and RPM windows cleared
 *   GET    /_mock/faults                         queued faults
 *   POST   /_mock/faults   { key | fingerprint, fault, provider?, sticky?, times? }
 *   DELETE /_mock/faults[?key=…|?fingerprint=…] clear one key's faults or all
 *   POST   /_mock/config   { rpmPerKey?: number | null, chunkDelayMs?: number, chunkCount?: number | null }
 */

const injectSchema = mockFaultOptionsSchema.extend({
  key: z.string().min(1).optional(),
  fingerprint: z.string().regex(/^[0-9a-f]{16}$/).optional(),
  fault: mockFaultSchema,
});

const configSchema = z.object({
  rpmPerKey: z.number().int().positive().nullable().optional(),
  chunkDelayMs: z.number().nonnegative().optional(),
  chunkCount: z.number().int().positive().nullable().optional(),
});

function json(status: number, body: unknown): MockReply {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

const NO_CONTENT: MockReply = { status: 204, headers: {}, body: '' };

function parseBody<T>(schema: z.ZodType<T>, text: string | undefined): { ok: true; value: T } | { ok: false; reply: MockReply } {
  let raw: unknown;
  try {
    raw = text ? JSON.parse(text) : {};
  } catch {
    return { ok: false, reply: json(400, { error: 'body is not JSON' }) };
  }
  const parsed = schema.safeParse(raw);
  // Issues name paths and expectations, never the values sent (a key could be among them).
  if (!parsed.success) return { ok: false, reply: json(400, { error: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`) }) };
  return { ok: true, value: parsed.data };
}

export function handleControlRequest(mock: MockProvider, method: string, path: string, query: URLSearchParams, body: string | undefined): MockReply {
  const route = `${method} ${path}`;
  switch (route) {
    case 'GET /stats':
      return json(200, mock.stats());
    case 'POST /reset':
      mock.reset();
      return NO_CONTENT;
    case 'GET /faults':
      return json(200, { faults: mock.faults.list() });
    case 'POST /faults': {
      const parsed = parseBody(injectSchema, body);
      if (!parsed.ok) return parsed.reply;
      const { key, fingerprint, fault, ...options } = parsed.value;
      if (key !== undefined) mock.faults.inject(key, fault, options);
      else if (fingerprint !== undefined) mock.faults.injectByFingerprint(fingerprint, fault, options);
      else return json(400, { error: 'key or fingerprint is required' });
      return NO_CONTENT;
    }
    case 'DELETE /faults': {
      const key = query.get('key');
      const fingerprint = query.get('fingerprint');
      if (key) mock.faults.clear(key);
      else if (fingerprint) mock.faults.clearFingerprint(fingerprint);
      else mock.faults.clear();
      return NO_CONTENT;
    }
    case 'POST /config': {
      const parsed = parseBody(configSchema, body);
      if (!parsed.ok) return parsed.reply;
      mock.configure(parsed.value);
      return NO_CONTENT;
    }
    default:
      return json(404, { error: `no control route ${route}` });
  }
}
