import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
// Only the parts of undici the gateway uses: its index loads everything (fetch, WebSocket,
// EventSource, caches, mocks, proxies), ~3.7 MiB more heap in a process whose idle RSS is held
// to 100 MB (issue #8). undici has no "exports" map, so these paths are public to Node; a move
// in a later version fails at start-up and in test/providers/upstreamHttpTransport.test.ts.
import Agent from 'undici/lib/dispatcher/agent.js';
import agentRequest from 'undici/lib/api/api-request.js';
import { ProviderError } from '../ProviderError';
import { headersGetter, type HeaderGetter } from './rateLimitHeaders';
import { scrubUpstreamText, upstreamCode } from './upstreamErrorMessage';
import { ChunkHandlerFailure, upstreamBody, type ChunkHandler } from './upstreamBody';

export interface UpstreamHttpOptions {
  /** Time until the response headers arrive. */
  headersTimeoutMs?: number;
  /** Longest silence between two chunks of a streamed body. */
  bodyTimeoutMs?: number;
  /** How long an idle pooled connection is kept for the next request. */
  keepAliveTimeoutMs?: number;
  /**
   * Most connections per origin. Default 4096: an HTTP/1.1 stream holds its connection until the
   * answer ends, so a cap of 64 queued the 65th concurrent stream behind whole answers (the
   * 1,000-stream benchmark timed out waiting for headers). Rate limits belong to the key pool.
   */
  connectionsPerOrigin?: number;
  /**
   * 'undici': undici.request, Node streams end to end (the default of the process-wide pool).
   * 'fetch': the global fetch, which msw (our test double for recorded provider answers)
   * intercepts; undici's own entry points bypass it. Default 'fetch' for a pool made with
   * `new UpstreamHttp()`, as the adapter tests do.
   */
  transport?: 'undici' | 'fetch';
}

export interface UpstreamRequestInit {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
  /** Scrubbed out of any error message. */
  apiKey: string;
  /**
   * This call's limit on the wait for response headers (the agent's headersTimeoutMs
   * otherwise). Past it, a transient ProviderError `first_byte_timeout`.
   */
  headersTimeoutMs?: number;
}

/**
 * Pooled, kept-alive HTTP to the providers. One undici Agent holds one connection pool per
 * origin, so every request to api.openai.com reuses warm TLS connections.
 *
 * The gateway's pool sends with undici.request: the global fetch wraps every body in WHATWG
 * streams, and its abort path builds a DOMException each time; together about a quarter of the
 * gateway's busy time per request in the issue #8 profile. The answer is handed back as a
 * Response-shaped object (status, ok, headers, body as an async iterable of bytes, text, json)
 * so adapters read either transport the same way. Tests that stub providers with msw keep the
 * fetch transport. Aborting the signal destroys the socket mid-response at once.
 */
export class UpstreamHttp {
  readonly agent: Agent;
  readonly transport: 'undici' | 'fetch';
  private readonly targets = new Map<string, UpstreamTarget>();

  constructor(options: UpstreamHttpOptions = {}) {
    this.transport = options.transport ?? 'fetch';
    this.agent = new Agent({
      headersTimeout: options.headersTimeoutMs ?? 60_000,
      bodyTimeout: options.bodyTimeoutMs ?? 60_000,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
      connections: options.connectionsPerOrigin ?? 4_096,
    });
  }

  /** Resolves with any HTTP status; rejects only with a transient ProviderError (network, timeout, abort). */
  async fetch(url: string, init: UpstreamRequestInit): Promise<Response> {
    try {
      if (this.transport === 'undici') {
        // The agent's own request(): undici.request(url) would parse the URL string anew on
        // every call (a WHATWG URL each time, issue #8's profile); a provider's URLs are few.
        const { origin, path } = this.target(url);
        const answer = await agentRequest.call(this.agent, {
          origin,
          path,
          method: init.method,
          headers: init.headers,
          body: init.body ?? null,
          signal: init.signal,
          // undici's own per-request timer: nothing added on the hot path.
          ...(init.headersTimeoutMs !== undefined ? { headersTimeout: init.headersTimeoutMs } : {}),
        });
        return new NodeResponse(answer.statusCode, answer.headers, answer.body, init.apiKey) as unknown as Response;
      }
      return await this.viaFetch(url, init);
    } catch (error) {
      if (init.headersTimeoutMs !== undefined && (error as { code?: unknown } | null)?.code === 'UND_ERR_HEADERS_TIMEOUT') {
        throw firstByteTimeout(init.headersTimeoutMs);
      }
      throw networkError(error, init.apiKey);
    }
  }

  /** The global fetch (msw in tests); a headers timeout of the call's own is a timer around it. */
  private async viaFetch(url: string, init: UpstreamRequestInit): Promise<Response> {
    const call = (signal: AbortSignal) =>
      fetch(url, {
        method: init.method,
        headers: init.headers,
        body: init.body,
        signal,
        // Node's fetch accepts an undici dispatcher; the DOM RequestInit type does not know it.
        dispatcher: this.agent,
      } as RequestInit);
    const limit = init.headersTimeoutMs;
    if (limit === undefined) return call(init.signal);
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(), limit);
    try {
      return await call(AbortSignal.any([init.signal, timer.signal]));
    } catch (error) {
      if (timer.signal.aborted && !init.signal.aborted) throw firstByteTimeout(limit);
      throw error;
    } finally {
      clearTimeout(timeout);
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** Origin and path of a URL, parsed once per distinct URL (base URL + endpoint: a handful per provider). */
  private target(url: string): UpstreamTarget {
    let target = this.targets.get(url);
    if (!target) {
      const parsed = new URL(url);
      target = { origin: parsed.origin, path: parsed.pathname + parsed.search };
      // Bounded all the same: a URL is built from configuration, but nothing here promises that.
      if (this.targets.size >= MAX_TARGETS) this.targets.clear();
      this.targets.set(url, target);
    }
    return target;
  }
}

interface UpstreamTarget {
  origin: string;
  path: string;
}

const MAX_TARGETS = 256;

/**
 * The parts of a WHATWG Response that the adapters use, over undici.request's answer. The body
 * is a Node stream (an async iterable of Buffers, which are Uint8Arrays); headers become a real
 * Headers object only when read, which happens on error answers.
 */
class NodeResponse {
  private headersObject: Headers | undefined;

  constructor(
    readonly status: number,
    private readonly rawHeaders: IncomingHttpHeaders,
    readonly body: Readable,
    private readonly apiKey: string,
  ) {}

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** One raw header, without building a Headers object (success answers read a few: issue 22). */
  header(name: string): string | undefined {
    const value = this.rawHeaders[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  get headers(): Headers {
    if (!this.headersObject) {
      const headers = new Headers();
      for (const [name, value] of Object.entries(this.rawHeaders)) {
        if (Array.isArray(value)) for (const v of value) headers.append(name, v);
        else if (value !== undefined) headers.set(name, value);
      }
      this.headersObject = headers;
    }
    return this.headersObject;
  }

  async text(): Promise<string> {
    let text = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.body as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
    } catch (error) {
      throw networkError(error, this.apiKey);
    }
    return text + decoder.decode();
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text()) as unknown;
  }
}

/** Reads a response's headers by name: the raw ones of the undici transport, else its Headers. */
export function headerReader(response: Response): HeaderGetter {
  if (response instanceof NodeResponse) return (name) => response.header(name);
  return headersGetter(response.headers);
}

/**
 * The call's headers timeout from the adapter context: streamed answers only (a one-piece
 * answer's headers come when it is complete, however long the model writes).
 */
export function firstByteLimit(req: { delivery?: 'stream' | 'whole' }, ctx: { firstByteTimeoutMs?: number }): { headersTimeoutMs?: number } {
  return ctx.firstByteTimeoutMs !== undefined && req.delivery !== 'whole' ? { headersTimeoutMs: ctx.firstByteTimeoutMs } : {};
}

/** No response headers within the call's limit: the upstream stalled; another key may answer. */
function firstByteTimeout(ms: number): ProviderError {
  return new ProviderError({ kind: 'transient', message: `no response headers within ${ms} ms`, providerCode: 'first_byte_timeout' });
}

/** Turns whatever fetch or a body read threw into a transient ProviderError with a safe message. */
export function networkError(error: unknown, apiKey: string): ProviderError {
  if (ProviderError.isInstance(error)) return error;
  const aborted = error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
  const detail = [error instanceof Error ? error.message : String(error), cause?.message].filter(Boolean).join(': ');
  return new ProviderError({
    kind: 'transient',
    message: aborted ? 'request aborted' : `network error: ${scrubUpstreamText(detail, apiKey)}`,
    providerCode: aborted ? 'aborted' : (upstreamCode((cause as { code?: string } | undefined)?.code, apiKey) ?? 'network_error'),
  });
}

const MAX_ERROR_BODY = 64 * 1024;

/** Reads an error body, bounded, so a huge or endless error page cannot hold the request. */
export async function readErrorBody(response: Response): Promise<string> {
  if (!response.body) return '';
  const decoder = new TextDecoder();
  let text = '';
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      if (text.length > MAX_ERROR_BODY) break;
    }
  } catch {
    // A body cut short still says what it said so far.
  }
  return text.slice(0, MAX_ERROR_BODY);
}

/**
 * Hands a response body to `onChunk` chunk by chunk until it ends or `stop()` says so after a
 * chunk, then lets it go: drained when reading stopped cleanly (the connection goes back to the
 * pool), destroyed otherwise. Not `for await`: Node's stream iterator is an async generator with
 * its own end-of-stream watcher, paid per chunk (issue #8; see upstreamBody). A failed read
 * rejects as a transient ProviderError with a safe message; what `onChunk` throws comes back
 * unchanged.
 */
export async function readUpstreamBody(body: unknown, apiKey: string, onChunk: ChunkHandler, stop: () => boolean): Promise<void> {
  const reader = upstreamBody(body);
  let clean = false;
  try {
    await reader.each(onChunk, stop);
    clean = true;
  } catch (error) {
    if (error instanceof ChunkHandlerFailure) throw error.cause;
    throw networkError(error, apiKey);
  } finally {
    reader.release(clean);
  }
}

/** A one-piece answer larger than this is refused: no chat answer comes near it. */
export const MAX_ANSWER_BODY = 16 * 1024 * 1024;

/**
 * Reads a one-piece (non-streamed) answer's body, bounded. Throws a transient ProviderError when
 * the body breaks off or passes MAX_ANSWER_BODY.
 */
export async function readAnswerBody(response: Response, apiKey: string, maxBytes = MAX_ANSWER_BODY): Promise<string> {
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  await readUpstreamBody(
    response.body,
    apiKey,
    (chunk) => {
      size += chunk.byteLength;
      if (size > maxBytes) {
        throw new ProviderError({ kind: 'transient', message: `upstream answer larger than ${maxBytes} bytes`, providerCode: 'answer_too_large' });
      }
      chunks.push(chunk);
    },
    () => false,
  );
  return Buffer.concat(chunks, size).toString('utf8');
}

let shared: UpstreamHttp | undefined;

/** The process-wide pool, created on first use. */
export function sharedUpstreamHttp(): UpstreamHttp {
  shared ??= new UpstreamHttp({ transport: 'undici' });
  return shared;
}
