import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyEchoGuard, withoutKey } from '../../server/providers/http/KeyEchoGuard';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * The passthrough endpoints (/v1/messages, /v1/responses) relay the provider's text as it came.
 * An upstream that echoes the key it was sent (a misbehaving provider or proxy), in a stream cut
 * anywhere or in a whole answer, still never gets the key to the client.
 */

const ANTHROPIC_KEY = 'sk-test-echo-anthropic-000000000000001';
const OPENAI_KEY = 'sk-test-echo-openai-0000000000000000001';

describe('KeyEchoGuard', () => {
  const key = 'sk-test-guard-0123456789';
  const text = `data: {"error":"bad key ${key}, try again"}\n\nevent: ping\ndata: {}\n\n${key}`;

  it('replaces the key wherever the chunks cut it, and passes everything else as it came', () => {
    for (let size = 1; size <= text.length; size++) {
      const guard = new KeyEchoGuard(key);
      let out = '';
      for (let i = 0; i < text.length; i += size) out += guard.pass(text.slice(i, i + size));
      out += guard.end();
      expect(out, `pieces of ${size}`).toBe(text.split(key).join('[redacted]'));
    }
  });

  it('holds back nothing at the end of an SSE event, and a tail that was not the key is released', () => {
    const guard = new KeyEchoGuard(key);
    expect(guard.pass('event: ping\ndata: {}\n\n')).toBe('event: ping\ndata: {}\n\n');
    expect(guard.pass('ask sk-te')).toBe('ask ');
    expect(guard.pass('a')).toBe('sk-tea');
    expect(guard.pass(' sk-test')).toBe(' ');
    expect(guard.end()).toBe('sk-test');
    expect(withoutKey(`{"text":"${key}"}`, key)).toBe('{"text":"[redacted]"}');
  });
});

/** An upstream that echoes the key it was sent into its answers, written in small pieces. */
async function echoingUpstream(): Promise<Server> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      const key = String(req.headers['x-api-key'] ?? req.headers.authorization?.replace(/^Bearer /, '') ?? '');
      const stream = (JSON.parse(body) as { stream?: boolean }).stream === true;
      if (req.url === '/v1/messages') return stream ? anthropicStream(res, key) : json(res, { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: `your key is ${key}` }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 4 } });
      if (req.url === '/v1/responses') return stream ? responsesStream(res, key) : json(res, { id: 'resp_1', object: 'response', status: 'completed', model: 'gpt-x', output: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: `your key is ${key}` }] }], usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 } });
      res.writeHead(404).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return server;
}

function json(res: ServerResponse, value: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
}

/** Writes `text` 5 bytes at a time, each its own write (so the key straddles the reads). */
async function dribble(res: ServerResponse, text: string): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (let i = 0; i < text.length; i += 5) {
    res.write(text.slice(i, i + 5));
    await new Promise((resolve) => setImmediate(resolve));
  }
  res.end();
}

const sse = (type: string, data: unknown) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

function anthropicStream(res: ServerResponse, key: string): Promise<void> {
  return dribble(
    res,
    sse('message_start', { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, usage: { input_tokens: 3, output_tokens: 1 } } }) +
      sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }) +
      sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }) +
      sse('error', { type: 'error', error: { type: 'api_error', message: `upstream proxy failed for key ${key}` } }),
  );
}

function responsesStream(res: ServerResponse, key: string): Promise<void> {
  const response = { id: 'resp_1', object: 'response', status: 'in_progress', model: 'gpt-x', output: [] };
  return dribble(
    res,
    sse('response.created', { type: 'response.created', sequence_number: 0, response }) +
      sse('response.output_text.delta', { type: 'response.output_text.delta', sequence_number: 1, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hello' }) +
      sse('error', { type: 'error', sequence_number: 2, code: 'server_error', message: `upstream proxy failed for key ${key}`, param: null }),
  );
}

describe('the passthrough endpoints never relay the key a provider echoed', () => {
  let upstream: Server;
  let gw: TestGateway;
  beforeAll(async () => {
    upstream = await echoingUpstream();
    const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    gw = await startTestGateway({
      env: { ANTHROPIC_API_KEY_1: ANTHROPIC_KEY, ANTHROPIC_BASE_URL: base, OPENAI_API_KEY_1: OPENAI_KEY, OPENAI_BASE_URL: `${base}/v1` },
      models: [testModel('claude-x', 'anthropic'), testModel('gpt-x', 'openai')],
    });
  });
  afterAll(async () => {
    await gw?.close();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  async function answer(path: string, token: string, body: Record<string, unknown>): Promise<string> {
    const headers: Record<string, string> = path === '/v1/messages' ? { 'x-api-key': token, 'anthropic-version': '2023-06-01' } : { authorization: `Bearer ${token}` };
    const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return `${res.status} ${[...res.headers].join(' ')} ${await res.text()}`;
  }

  it.each([
    ['/v1/messages', true],
    ['/v1/messages', false],
    ['/v1/responses', true],
    ['/v1/responses', false],
  ] as const)('%s (stream: %s)', async (path, stream) => {
    const token = await gw.token('echo');
    const body = path === '/v1/messages' ? { model: 'claude-x', max_tokens: 16, stream, messages: [{ role: 'user', content: 'hi' }] } : { model: 'gpt-x', input: 'hi', stream };
    const seen = await answer(path, token, body);
    expect(seen).toContain('[redacted]'); // the echo arrived, without the key
    for (const key of [ANTHROPIC_KEY, OPENAI_KEY]) expect(seen).not.toContain(key);
  });
});
