import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { StreamedResponse } from '../../server/streams/StreamedResponse';

/**
 * StreamedResponse writes chunk frames straight to the socket; these tests read the raw bytes
 * off a loopback TCP connection, so they see exactly what a client sees: the frames, the
 * terminator, what a kept-alive or pipelined connection carries next, and backpressure.
 */

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  server?.close();
  server = undefined;
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function rawClient(port: number): Promise<{ socket: Socket; received: () => string; until: (text: string, times?: number) => Promise<string> }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let data = '';
  const waiters: (() => void)[] = [];
  socket.setEncoding('latin1');
  socket.on('data', (part: string) => {
    data += part;
    waiters.splice(0).forEach((wake) => wake());
  });
  /** Resolves with everything received once `text` is in it `times` times. */
  const until = async (text: string, times = 1): Promise<string> => {
    while (data.split(text).length - 1 < times) await new Promise<void>((resolve) => waiters.push(resolve));
    return data;
  };
  return { socket, received: () => data, until };
}

/** One chunk frame as HTTP/1.1 defines it: hex byte length, CRLF, the bytes, CRLF. */
function frame(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  return `${bytes.length.toString(16)}\r\n${bytes.toString('latin1')}\r\n`;
}

const TEXTS = ['data: one\n\n', 'data: {"text":"héllo wörld 🌍"}\n\n', `data: ${'x'.repeat(5000)}\n\n`];

it('writes each text as one chunk frame, ends with Node`s terminator, and leaves the kept-alive socket clean', async () => {
  const drainListeners: number[] = [];
  const port = await serve((req, res) => {
    const before = req.socket.listenerCount('drain');
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const body = new StreamedResponse(res);
    const stop = body.onDrain(() => {});
    // After the first (headers and all, through Node), each text is one socket write.
    let socketWrites = 0;
    const write = req.socket.write;
    req.socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
      socketWrites += 1;
      return write.apply(this, args);
    } as Socket['write'];
    TEXTS.forEach((text, i) => {
      const before = socketWrites;
      expect(body.write(text)).toBe(true);
      if (i > 0) expect(socketWrites - before).toBe(1);
    });
    req.socket.write = write;
    res.on('finish', () => drainListeners.push(req.socket.listenerCount('drain') - before));
    body.end('data: bye\n\n');
    stop();
  });
  const client = await rawClient(port);
  client.socket.write('GET /a HTTP/1.1\r\nhost: x\r\n\r\n');
  const first = await client.until('0\r\n\r\n');
  const split = first.indexOf('\r\n\r\n');
  const head = first.slice(0, split);
  const body = first.slice(split + 4);
  expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  expect(head.toLowerCase()).toContain('transfer-encoding: chunked');
  expect(body).toBe(TEXTS.map(frame).join('') + frame('data: bye\n\n') + '0\r\n\r\n');

  // The same connection serves the next request, and the first left no listener behind.
  client.socket.write('GET /b HTTP/1.1\r\nhost: x\r\n\r\n');
  const both = await client.until('0\r\n\r\n', 2);
  const second = both.slice(first.length);
  expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  expect(second.slice(second.indexOf('\r\n\r\n') + 4)).toBe(body);
  await new Promise<void>((resolve) => {
    const check = () => (drainListeners.length === 2 ? resolve() : setImmediate(check));
    check();
  });
  expect(drainListeners).toEqual([0, 0]);
  client.socket.destroy();
});

it('writes an HTTP/1.0 answer unframed, as Node would (no chunked encoding there)', async () => {
  const port = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const body = new StreamedResponse(res);
    for (const text of TEXTS) body.write(text);
    body.end('data: bye\n\n');
  });
  const client = await rawClient(port);
  client.socket.write('GET / HTTP/1.0\r\nhost: x\r\n\r\n');
  await once(client.socket, 'end');
  const raw = client.received();
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  expect(Buffer.from(body, 'latin1').toString('utf8')).toBe(TEXTS.join('') + 'data: bye\n\n');
});

it('a pipelined answer waits for the one before it, and both arrive whole and framed', async () => {
  const responses: StreamedResponse[] = [];
  let bothArrived!: () => void;
  const arrived = new Promise<void>((resolve) => (bothArrived = resolve));
  const port = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    responses.push(new StreamedResponse(res));
    if (responses.length === 2) bothArrived();
  });
  const client = await rawClient(port);
  client.socket.write('GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\n');
  await arrived;
  const [first, second] = responses as [StreamedResponse, StreamedResponse];
  // The second response writes while the first still streams: Node holds its bytes.
  second.write('data: second 1\n\n');
  second.write('data: second 2\n\n');
  first.write('data: first 1\n\n');
  first.write('data: first 2\n\n');
  first.end('data: first end\n\n');
  second.write('data: second 3\n\n');
  second.end();
  const raw = await client.until('data: second 3\n\n\r\n0\r\n\r\n');
  const split = raw.indexOf('HTTP/1.1 200 OK', 1);
  const one = raw.slice(raw.indexOf('\r\n\r\n') + 4, split);
  const two = raw.slice(raw.indexOf('\r\n\r\n', split) + 4);
  expect(one).toBe(frame('data: first 1\n\n') + frame('data: first 2\n\n') + frame('data: first end\n\n') + '0\r\n\r\n');
  expect(two).toBe(frame('data: second 1\n\n') + frame('data: second 2\n\n') + frame('data: second 3\n\n') + '0\r\n\r\n');
  client.socket.destroy();
});

it('refuses writes while the client reads nothing, and drained() resolves once it reads again', async () => {
  const piece = `data: ${'y'.repeat(64 * 1024)}\n\n`;
  let written = 0;
  let refusedAfter = -1;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const port = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const body = new StreamedResponse(res);
    void (async () => {
      // Far more than loopback buffers hold: a writer that never waits would not stop here.
      for (let i = 0; i < 2_000; i += 1) {
        written += 1;
        if (!body.write(piece)) {
          if (refusedAfter < 0) refusedAfter = written;
          await body.drained();
          if (res.destroyed) return;
        }
        if (written === 200) break;
      }
      body.end('data: end\n\n');
      finish();
    })();
  });
  const client = await rawClient(port);
  client.socket.pause();
  client.socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  // The writer stops at the first refusal and stays there while nothing is read.
  await new Promise<void>((resolve) => {
    const check = () => (refusedAfter > 0 ? resolve() : setImmediate(check));
    check();
  });
  const stoppedAt = written;
  await new Promise((resolve) => setImmediate(resolve));
  expect(written).toBe(stoppedAt);
  expect(refusedAfter).toBeLessThan(200);
  client.socket.resume();
  await finished;
  const raw = await client.until('data: end\n\n\r\n0\r\n\r\n');
  expect(raw.split(frame(piece)).length - 1).toBe(200);
  client.socket.destroy();
});
