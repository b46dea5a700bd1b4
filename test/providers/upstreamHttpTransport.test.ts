import { adapterEvents } from '../support/adapterEvents';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdapters } from '../../server/providers/createAdapters';
import { ProviderError } from '../../server/providers/ProviderError';
import { UpstreamHttp } from '../../server/providers/http/UpstreamHttp';
import type { AdapterEvent } from '../../server/providers/types';

/** The undici.request transport (the gateway's own pool) against a real server on 127.0.0.1: msw cannot see it. */

const KEY = 'sk-test-transport-0123456789';
let hung: ServerResponse | undefined;
let hungClosed: Promise<unknown> | undefined;
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    const { messages } = JSON.parse(body) as { messages: { content: string }[] };
    const mode = messages[0]?.content;
    if (mode === 'limited') {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '3' });
      res.end(JSON.stringify({ error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const chunk = (text: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: text } }] })}\n\n`;
    if (mode === 'cut') {
      // Headers and one chunk, then the connection drops: no finish, no [DONE].
      res.write(chunk('half'));
      setImmediate(() => res.socket?.destroy());
      return;
    }
    if (mode === 'hang') {
      hung = res;
      hungClosed = once(res, 'close');
      res.write(chunk('first'));
      return;
    }
    const answer =
      chunk('Hello') +
      chunk(' there') +
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })}\n\n` +
      'data: [DONE]\n\n';
    if (mode === 'tail') {
      // The answer, then the end of the body a turn later: the reader stops at [DONE] and the
      // rest is drained, not read.
      res.write(answer);
      setImmediate(() => res.end(': bye\n\n'));
      return;
    }
    res.end(
      chunk('Hello') +
        chunk(' there') +
        `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })}\n\n` +
        'data: [DONE]\n\n',
    );
  });
});
let baseUrl = '';
const http = new UpstreamHttp({ transport: 'undici' });
const adapter = createAdapters(http).openai;

beforeAll(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  await http.close();
  server.closeAllConnections();
  server.close();
});

function run(content: string, signal = new AbortController().signal) {
  return adapterEvents(adapter, { provider: 'openai', model: 'gpt-test', messages: [{ role: 'user', content }] }, { apiKey: KEY, baseUrl, signal });
}

describe('UpstreamHttp over undici.request', () => {
  it('streams an answer the same way as fetch does', async () => {
    const events: AdapterEvent[] = [];
    for await (const e of run('ok')) events.push(e);
    expect(events).toEqual([
      { type: 'delta', text: 'Hello' },
      { type: 'delta', text: ' there' },
      { type: 'usage', usage: expect.objectContaining({ inputTokens: 3, outputTokens: 2 }) },
      { type: 'done', finishReason: 'stop' },
    ]);
  });

  it('reads answers whose body goes on after [DONE], one after another', async () => {
    for (let i = 0; i < 3; i += 1) {
      const texts: string[] = [];
      for await (const e of run('tail')) if (e.type === 'delta') texts.push(e.text);
      expect(texts.join('')).toBe('Hello there');
    }
  });

  it('reports an answer whose connection drops mid-stream as a transient failure', async () => {
    const events: AdapterEvent[] = [];
    const error = await (async () => {
      for await (const e of run('cut')) events.push(e);
    })().catch((e: unknown) => e);
    expect(events).toEqual([{ type: 'delta', text: 'half' }]);
    expect(error).toMatchObject({ kind: 'transient' });
  });

  it('hands error answers over with their status and headers', async () => {
    const error = await (async () => {
      for await (const _ of run('limited'));
    })().catch((e: unknown) => e);
    expect(ProviderError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ kind: 'rate_limited', retryAfterMs: 3000 });
  });

  it('closes the upstream connection when the signal aborts mid-answer', async () => {
    const controller = new AbortController();
    const stream = run('hang', controller.signal)[Symbol.asyncIterator]();
    expect((await stream.next()).value).toEqual({ type: 'delta', text: 'first' });
    const rest = stream.next();
    controller.abort();
    const error = await rest.catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'transient', providerCode: 'aborted' });
    await hungClosed;
    expect(hung?.destroyed).toBe(true);
  });
});
