import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger';
import { SecretMatcher } from '../../server/observability/SecretMatcher';
import { captureLines } from '../ops/waitFor';
import { startTestGateway, testModel, TEST_JWT_SECRET, type TestGateway } from '../support/gatewayHarness';

/**
 * Issue 24.5: upstream error bodies that echo the request's key, in every encoding an attack
 * pass found past the old blocklist scrubber (spaced, percent-encoded, zero-width-joined,
 * fullwidth) and a few more (base64, hex, HTML entities), in every field (message, code, type,
 * param), for the OpenAI, Anthropic and Gemini wire formats, as non-2xx answers and as errors
 * inside a 200 stream (before and after text). Everything a client receives (/v1 non-stream and
 * stream, tRPC chat.start + chat.stream, chat.complete, byok.test) and every log line is kept
 * and scanned for the keys in each encoding and after normalizing.
 */

const KEYS = {
  openai: 'sk-test-echo-openai-Q7f3KpZ9wLx2Vb8N',
  anthropic: 'sk-test-echo-anthropic-Rm4Tz8Yq1Hc6Jd0S',
  google: 'AIzaTestEchoGoogle-Wn5Pk2Lx9Vr3Bq7M',
} as const;
const BYOK_KEY = 'sk-test-echo-byok-Fj6Hs1Dq8Ga4Ku2Z';
const ENCRYPTION_KEY = 'ab'.repeat(32);
const SECRETS = [...Object.values(KEYS), BYOK_KEY, TEST_JWT_SECRET];

const ENCODINGS: Record<string, (key: string) => string> = {
  plain: (k) => k,
  spaced: (k) => [...k].join(' '),
  percent: (k) => [...Buffer.from(k)].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join(''),
  zeroWidth: (k) => [...k].join('\u200d'),
  zeroWidthSpace: (k) => [...k].join('\u200b'),
  fullwidth: (k) => [...k].map((c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)).join(''),
  base64: (k) => Buffer.from(k).toString('base64'),
  hex: (k) => Buffer.from(k).toString('hex'),
  entities: (k) => [...k].map((c) => `&#${c.charCodeAt(0)};`).join(''),
  dashed: (k) => [...k].join('-'),
  // A plain identifier: passes the field-name pattern, so only comparing with the key stops it.
  underscored: (k) => k.replace(/-/g, '_'),
};
const FIELDS = ['message', 'code', 'type', 'param'] as const;
type Field = (typeof FIELDS)[number];
/** How the upstream fails: a status with an error body, or an error event inside a 200 stream (before or after text). */
const MODES = ['status400', 'status500', 'streamError', 'midStream'] as const;
type Mode = (typeof MODES)[number];
type Wire = 'openai' | 'anthropic' | 'google';

interface Plan {
  encoding: string;
  field: Field;
  mode: Mode;
}
let plan: Plan = { encoding: 'plain', field: 'message', mode: 'status400' };

function keyOf(req: IncomingMessage): string {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7);
  return String(req.headers['x-api-key'] ?? req.headers['x-goog-api-key'] ?? '');
}

/** The provider's error object with the echo in the planned field. */
function errorObject(wire: Wire, echo: string, field: Field): unknown {
  const at = (f: Field, otherwise: string) => (field === f ? echo : otherwise);
  if (wire === 'openai') {
    return { message: `Incorrect API key provided: ${at('message', 'sk-****')}`, type: at('type', 'invalid_request_error'), code: at('code', 'invalid_value'), param: at('param', 'temperature') };
  }
  if (wire === 'anthropic') {
    const message = field === 'param' ? `${echo}: Field required` : `invalid x-api-key ${at('message', '')}`;
    return { type: at('type', 'invalid_request_error'), message, ...(field === 'code' ? { details: { error_code: echo } } : {}) };
  }
  return {
    code: 400,
    message: `API key not usable: ${at('message', '')}`,
    status: at('type', 'INVALID_ARGUMENT'),
    details: [
      { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: at('code', 'BAD_FIELD') },
      { '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: at('param', 'contents') }] },
    ],
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** A 200 stream: one text delta when `withText`, then the provider's in-stream error event. */
function streamWithError(res: ServerResponse, wire: Wire, error: unknown, withText: boolean): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  if (wire === 'openai') {
    if (withText) res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'partial' }, finish_reason: null }] })}\n\n`);
    res.end(`data: ${JSON.stringify({ error })}\n\n`);
  } else if (wire === 'anthropic') {
    res.write(`event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { usage: { input_tokens: 3 } } })}\n\n`);
    if (withText) res.write(`event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'partial' } })}\n\n`);
    res.end(`event: error\ndata: ${JSON.stringify({ type: 'error', error })}\n\n`);
  } else {
    if (withText) res.write(`data: ${JSON.stringify({ candidates: [{ content: { parts: [{ text: 'partial' }], role: 'model' } }] })}\n\n`);
    res.end(`data: ${JSON.stringify({ error })}\n\n`);
  }
}

async function echoUpstream(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let body = '';
  for await (const chunk of req) body += String(chunk);
  const path = req.url ?? '';
  const wire: Wire = path.startsWith('/openai') ? 'openai' : path.includes('/v1beta/') ? 'google' : 'anthropic';
  const streaming = wire === 'google' ? path.includes('streamGenerateContent') : body.includes('"stream":true');
  const echo = ENCODINGS[plan.encoding]!(keyOf(req));
  const error = errorObject(wire, echo, plan.field);
  const inStream = plan.mode === 'streamError' || plan.mode === 'midStream';
  if (inStream && streaming) return streamWithError(res, wire, error, plan.mode === 'midStream');
  const status = plan.mode === 'status500' ? 500 : 400;
  send(res, status, wire === 'anthropic' ? { type: 'error', error } : wire === 'google' ? { error: { ...(error as object), code: status } } : { error });
}

let upstream: Server;
let gw: TestGateway;
let user: string;
let byokUser: string;
const logs = captureLines();
/** Everything the clients of this file received: bodies, stream bytes, headers. */
const received: string[] = [];

beforeAll(async () => {
  upstream = createServer((req, res) => void echoUpstream(req, res).catch(() => res.destroy()));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  gw = await startTestGateway({
    env: {
      OPENAI_API_KEY: KEYS.openai,
      OPENAI_BASE_URL: `${base}/openai/v1`,
      ANTHROPIC_API_KEY: KEYS.anthropic,
      ANTHROPIC_BASE_URL: `${base}/anthropic`,
      GOOGLE_AI_API_KEY: KEYS.google,
      GOOGLE_AI_BASE_URL: `${base}/google`,
      ENCRYPTION_KEY,
      // One attempt: a 5xx is not retried with a backoff wait, and no key cools down.
      MAX_ATTEMPTS: '1',
      LOG_LEVEL: 'debug',
    },
    models: [testModel('gpt-4o', 'openai'), testModel('claude-echo', 'anthropic'), testModel('gemini-echo', 'google')],
    logger: createLogger({ level: 'debug', destination: logs.destination }),
    // No backoff wait after a 5xx (there is no second attempt anyway).
    dispatcher: { sleep: async () => {} },
  });
  user = await gw.token('echo-user');
  byokUser = await gw.token('echo-byok-user');
});
afterAll(async () => {
  await gw?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
});

async function keep(res: Response): Promise<{ status: number; text: string }> {
  const text = await res.text();
  received.push(text, JSON.stringify([...res.headers]));
  return { status: res.status, text };
}

const post = (path: string, token: string, body: unknown) =>
  fetch(`${gw.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(keep);

const MESSAGES = [{ role: 'user', content: 'hello' }];

/** The client surfaces a chat answer reaches: /v1 whole and streamed, chat.complete, chat.start with its chat.stream. */
const SURFACES: ((model: string, token: string) => Promise<unknown>)[] = [
  (model, token) => post('/v1/chat/completions', token, { model, messages: MESSAGES }),
  (model, token) => post('/v1/chat/completions', token, { model, messages: MESSAGES, stream: true }),
  (model, token) => post('/trpc/chat.complete', token, { model, messages: MESSAGES }),
  async (model, token) => {
    const started = await post('/trpc/chat.start', token, { model, messages: MESSAGES });
    const streamId = (JSON.parse(started.text) as { result?: { data?: { streamId?: string } } }).result?.data?.streamId;
    if (!streamId) return;
    const input = encodeURIComponent(JSON.stringify({ streamId }));
    await fetch(`${gw.url}/trpc/chat.stream?input=${input}`, { headers: { authorization: `Bearer ${token}` } }).then(keep);
  },
];

/** Decodes JSON `\u` escapes so a scan sees the characters a client would render. */
const unescaped = (text: string) => text.replace(/\\u([0-9a-fA-F]{4})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
const canonical = (text: string) => text.normalize('NFKC').toLowerCase().replace(/[^a-z0-9]/g, '');

/** Where a secret shows in `text`: as is, in one of the encodings, or once normalized. */
function findSecrets(text: string): string[] {
  const found: string[] = [];
  const plainText = unescaped(text);
  const flat = canonical(plainText);
  for (const secret of SECRETS) {
    for (const [name, encode] of Object.entries(ENCODINGS)) {
      if (plainText.includes(encode(secret)) || plainText.toLowerCase().includes(encode(secret).toLowerCase())) found.push(`${name}:${secret.slice(0, 10)}`);
    }
    if (flat.includes(canonical(secret))) found.push(`normalized:${secret.slice(0, 10)}`);
    if (new SecretMatcher([secret]).leaks(plainText)) found.push(`fragment:${secret.slice(0, 10)}`);
  }
  return found;
}

describe('upstream error text never carries a key to a client or a log', () => {
  it('issue 24.5: key echoes in every encoding and field reach neither clients nor logs (openai, anthropic, gemini)', async () => {
    const models: Record<Wire, string> = { openai: 'gpt-4o', anthropic: 'claude-echo', google: 'gemini-echo' };
    let i = 0;
    for (const wire of ['openai', 'anthropic', 'google'] as const) {
      for (const encoding of Object.keys(ENCODINGS)) {
        for (const field of FIELDS) {
          // Across the loop every failure mode meets every surface, and both meet every encoding and field.
          plan = { encoding, field, mode: MODES[i % MODES.length]! };
          await SURFACES[Math.floor(i / MODES.length) % SURFACES.length]!(models[wire], user);
          i += 1;
        }
      }
    }
    // The upstream's words did not come through; the gateway's own did, with the request id.
    const v1 = received.find((r) => r.includes('refused the request as invalid'));
    expect(v1).toBeDefined();
    expect(received.some((r) => /request id [0-9a-f-]{36}/.test(r))).toBe(true);
    expect(received.some((r) => r.includes('Incorrect API key provided'))).toBe(false);

    const leaks = new Map<string, string[]>();
    received.forEach((text, n) => {
      const found = findSecrets(text);
      if (found.length > 0) leaks.set(`response ${n}: ${text.slice(0, 160)}`, found);
    });
    logs.lines.forEach((line, n) => {
      const found = findSecrets(line);
      if (found.length > 0) leaks.set(`log ${n}: ${line.slice(0, 200)}`, found);
    });
    expect([...leaks].slice(0, 5)).toEqual([]);
    // The failures were logged (with what the provider said, minus the key) for operators.
    expect(logs.lines.filter((l) => l.includes('upstream attempt failed')).length).toBeGreaterThanOrEqual(i);
  });

  it('issue 24.5: a BYOK key echoed in every encoding reaches neither byok.test, the chat surfaces nor the logs', async () => {
    const add = await post('/trpc/byok.add', byokUser, { provider: 'openai', apiKey: BYOK_KEY });
    const id = (JSON.parse(add.text) as { result: { data: { id: string } } }).result.data.id;
    let i = 0;
    for (const encoding of Object.keys(ENCODINGS)) {
      plan = { encoding, field: FIELDS[i % FIELDS.length]!, mode: MODES[i++ % MODES.length]! };
      await post('/trpc/byok.test', byokUser, { id });
      await SURFACES[i % SURFACES.length]!('gpt-4o', byokUser);
    }
    const leaks = [...received, ...logs.lines].map(findSecrets).filter((found) => found.length > 0);
    expect(leaks).toEqual([]);
  });

  it('issue 24.5: a validation field name that passes the strict pattern is passed on; one carrying the key is not', async () => {
    plan = { encoding: 'plain', field: 'message', mode: 'status400' };
    const named = await post('/v1/chat/completions', user, { model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
    expect(named.status).toBe(400);
    expect((JSON.parse(named.text) as { error: { message: string } }).error.message).toMatch(/^openai refused the request as invalid \(field temperature\) \(request id [0-9a-f-]{36}\)$/);
    plan = { encoding: 'underscored', field: 'param', mode: 'status400' };
    const echoed = await post('/v1/chat/completions', user, { model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
    expect((JSON.parse(echoed.text) as { error: { message: string } }).error.message).toMatch(/^openai refused the request as invalid \(request id/);
  });
});

describe('SecretMatcher', () => {
  const key = KEYS.openai;
  const matcher = new SecretMatcher([key]);

  it('issue 24.5: finds the key and long pieces of it in each encoding, and leaves ordinary provider text alone', () => {
    for (const [name, encode] of Object.entries(ENCODINGS)) {
      expect(matcher.leaks(`Incorrect API key provided: ${encode(key)}.`), name).toBe(true);
      expect(matcher.leaks(`tail ${encode(key.slice(-18))}`), `${name} (a piece)`).toBe(true);
    }
    for (const ordinary of [
      'Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000.',
      'Incorrect API key provided: sk-****Vb8N. You can find your API key at https://platform.openai.com/account/api-keys.',
      'messages.0.content: Field required',
      'The model `gpt-4o-mini-2024-07-18` does not exist or you do not have access to it.',
    ]) {
      expect(matcher.leaks(ordinary), ordinary).toBe(false);
    }
  });
});
