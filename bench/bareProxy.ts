import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';

/**
 * The baseline every gateway figure is compared with: about the least a Node gateway can do.
 * It parses the JSON body (as any gateway must, to read the model), forwards it with a
 * kept-alive undici pool and a fixed provider key, and returns the answer as it comes.
 * No auth, no key pool, no validation, no translation.
 */
export interface BareProxyOptions {
  port: number;
  /** OpenAI-style base URL, e.g. http://127.0.0.1:4010/openai/v1 */
  upstream: string;
  key: string;
}

export async function startBareProxy(options: BareProxyOptions): Promise<Server> {
  const upstream = new URL(options.upstream);
  const path = upstream.pathname.replace(/\/$/, '') + '/chat/completions';
  const pool = new Pool(upstream.origin, { keepAliveTimeout: 30_000, connections: 2_048 });
  const authorization = `Bearer ${options.key}`;

  const server = createServer((req, res) => {
    readBody(req)
      .then(async (text) => {
        const body = JSON.stringify(JSON.parse(text));
        const answer = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json', authorization }, body });
        res.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type'] ?? 'application/json') });
        await pipeline(answer.body, res);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
  });
  server.keepAliveTimeout = 30_000;
  // The same accept queue as the gateway's (createGateway.ts), so 1,000 streams opening at once meet both alike.
  server.listen({ port: options.port, host: '127.0.0.1', backlog: 4096 });
  await once(server, 'listening');
  return server;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

export function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}
