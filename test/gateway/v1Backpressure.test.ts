import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * /v1 streaming end to end with a client that stops reading: the gateway must stop reading the
 * provider's answer with it (its socket writes wait for 'drain', and the upstream body pauses),
 * not buffer the whole answer in memory, and must deliver all of it once the client reads again.
 * The provider here is a plain HTTP server the test writes by hand, so it can see the moment
 * its own writes stop being taken.
 */

const PIECE = 'x'.repeat(16 * 1024);
const CHUNK = `data: ${JSON.stringify({ id: 'chatcmpl-bp', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: { content: PIECE }, finish_reason: null }] })}\n\n`;
const LAST = `data: ${JSON.stringify({ id: 'chatcmpl-bp', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`;
/** Far more than loopback's socket buffers on both hops hold (a few MB each way). */
const GIVE_UP_BYTES = 128 * 1024 * 1024;

let upstream: Server;
let answers: ServerResponse[] = [];
let answered: (() => void) | undefined;
let gw: TestGateway;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      answers.push(res);
      answered?.();
    });
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const { port } = upstream.address() as AddressInfo;
  gw = await startTestGateway({
    env: { OPENAI_API_KEY_1: 'sk-test-backpressure-0001', OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1` },
    models: [testModel('gpt-4o', 'openai')],
  });
});
afterAll(async () => {
  for (const res of answers) res.destroy();
  await gw?.close();
  upstream?.closeAllConnections();
  upstream?.close();
});

it('a /v1 client that stops reading holds the provider back, then receives the whole answer', async () => {
  answers = [];
  const gotAnswer = new Promise<void>((resolve) => (answered = resolve));
  const token = await gw.token('slow-reader');
  const { port } = new URL(gw.url);
  const client = connect(Number(port), '127.0.0.1');
  await once(client, 'connect');
  // Reads nothing until told: the kernel's buffers fill, then the gateway's writes are refused.
  client.pause();
  const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a long answer, read slowly' }], stream: true });
  client.write(
    `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  await gotAnswer;
  const res = answers[0]!;

  // Writes until the gateway stops taking the answer, then checks that it stays stopped: a
  // gateway without backpressure drains the provider within milliseconds, every time.
  let written = 0;
  let pieces = 0;
  for (;;) {
    const accepted = res.write(CHUNK);
    written += CHUNK.length;
    pieces += 1;
    if (written > GIVE_UP_BYTES) throw new Error(`the gateway read ${written} bytes from the provider while its client read nothing`);
    if (accepted) continue;
    // An absence cannot be awaited; 300 ms is ages for a loopback read, and nothing here reads.
    const drainedSoon = await Promise.race([once(res, 'drain').then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 300))]);
    if (!drainedSoon) break;
  }
  expect(written).toBeLessThan(64 * 1024 * 1024);

  // The client reads again: everything held back arrives, in order, and the answer ends.
  let received = '';
  client.setEncoding('latin1');
  client.on('data', (text: string) => (received += text));
  client.resume();
  await once(res, 'drain');
  res.end(LAST);
  await once(client, 'end');

  expect(received).toMatch(/^HTTP\/1\.1 200 /);
  // The client asked for the connection to close after the answer, and it did ('end' above).
  expect(received.slice(0, received.indexOf('\r\n\r\n')).toLowerCase()).toContain('connection: close');
  const events = dechunk(received.slice(received.indexOf('\r\n\r\n') + 4))
    .split('\n\n')
    .filter((frame) => frame.startsWith('data: '))
    .map((frame) => frame.slice('data: '.length));
  expect(events.at(-1)).toBe('[DONE]');
  const chunks = events.slice(0, -1).map((data) => JSON.parse(data) as { choices: { delta: { content?: string }; finish_reason: string | null }[] });
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  expect(text.length).toBe(pieces * PIECE.length);
  expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
});

/** The body of a `transfer-encoding: chunked` message, read whole. */
function dechunk(body: string): string {
  let out = '';
  for (let at = 0; ; ) {
    const lineEnd = body.indexOf('\r\n', at);
    const size = Number.parseInt(body.slice(at, lineEnd), 16);
    if (!(size > 0)) return out;
    out += body.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}
