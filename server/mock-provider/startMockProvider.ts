import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fingerprintOf, maskOf } from '../pool/keyIdentity';
import { handleControlRequest } from './handleControlRequest';
import { chunkCountFromModel, planAnswer, type MockAnswerPlan } from './mockAnswer';
import type { MockDialect, MockErrorInfo, MockReply, MockStreamRenderer } from './mockDialect';
import type { MockFault, MockProviderName } from './mockFault';
import { MockFaults } from './MockFaults';
import { MockStats, type MockCounterName, type MockKeyStats, type MockStatsSnapshot } from './MockStats';
import { RpmLimiter } from './RpmLimiter';
import { anthropicMock } from './wire/anthropicMock';
import { geminiMock } from './wire/geminiMock';
import { openaiMock } from './wire/openaiMock';

export interface MockProviderOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Requests per minute per key over a sliding 60 s window; unlimited when absent. */
  rpmPerKey?: number;
  /** Pause before each streamed delta; 0 (default) sends the whole stream at once. */
  chunkDelayMs?: number;
  /**
   * Deltas per answer when neither `x-mock-chunks` nor a `mock-chunks-N` model name says: lets a
   * gateway that only accepts catalog model names be benchmarked with long answers.
   * Default: the echo plus four filler words.
   */
  chunkCount?: number;
  /** Milliseconds since the epoch; drives the RPM window, reset times and `created` fields. */
  clock?: () => number;
  /** Which keys are valid; default: any non-empty key. */
  acceptKey?: (key: string) => boolean;
}

export interface MockRequestEvent {
  provider: MockProviderName;
  fingerprint: string;
  /** Status sent (0 if none was sent before the connection closed). */
  status: number;
}

export type MockEventName = 'request' | 'finished' | 'aborted' | 'cut';

export interface MockProvider {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** What each official SDK takes as its base URL. */
  baseUrls: { openai: string; anthropic: string; gemini: string };
  faults: MockFaults;
  stats(): MockStatsSnapshot;
  /** One key's counters, looked up by its fingerprint. */
  statsFor(key: string): MockKeyStats;
  /**
   * The next event of this kind (optionally for one key / provider): `request` when one arrives,
   * `finished` when an answer was sent in full, `aborted` when the client went away first,
   * `cut` when the mock cut a stream on purpose. Lets tests wait instead of sleeping.
   */
  nextEvent(name: MockEventName, match?: { key?: string; provider?: MockProviderName }): Promise<MockRequestEvent>;
  /** Changes limits and pace at run time (the control API's `/_mock/config`). */
  configure(settings: { rpmPerKey?: number | null; chunkDelayMs?: number; chunkCount?: number | null }): void;
  /** Requests received whose response has not ended or closed yet: 0 when no caller left one hanging. */
  openResponses(): number;
  /** Clears faults, counters and RPM windows; keeps the configuration. */
  reset(): void;
  close(): Promise<void>;
}

const DIALECTS: readonly MockDialect[] = [openaiMock, anthropicMock, geminiMock];
const MAX_BODY_BYTES = 10 * 1024 * 1024;
const MAX_CHUNKS = 1_000_000;

/**
 * A fake OpenAI / Anthropic / Gemini on loopback that the official SDKs accept unchanged, with
 * per-key rate limits and injectable faults, for tests, the keyless demo and benchmarks.
 */
export async function startMockProvider(options: MockProviderOptions = {}): Promise<MockProvider> {
  const clock = options.clock ?? Date.now;
  const acceptKey = options.acceptKey ?? ((key: string) => key.length > 0);
  const faults = new MockFaults();
  const stats = new MockStats();
  const limiter = new RpmLimiter(options.rpmPerKey, clock);
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let chunkDelayMs = options.chunkDelayMs ?? 0;
  let defaultChunkCount = options.chunkCount;
  let serial = 0;
  let openResponses = 0;
  const fingerprints = new Map<string, string>();

  /** Hashing each request's key is measurable in benchmarks; keys are few, so remember them. */
  function fingerprintCached(key: string): string {
    let fp = fingerprints.get(key);
    if (fp === undefined) {
      if (fingerprints.size > 10_000) fingerprints.clear();
      fingerprints.set(key, (fp = fingerprintOf(key)));
    }
    return fp;
  }

  const mock: MockProvider = {
    url: '',
    port: 0,
    baseUrls: { openai: '', anthropic: '', gemini: '' },
    faults,
    stats: () => stats.snapshot(),
    openResponses: () => openResponses,
    statsFor: (key) => stats.forKey(key),
    nextEvent(name, match = {}) {
      const fingerprint = match.key === undefined ? undefined : fingerprintOf(match.key);
      return new Promise((resolve) => {
        const listener = (event: MockRequestEvent) => {
          if (fingerprint !== undefined && event.fingerprint !== fingerprint) return;
          if (match.provider !== undefined && event.provider !== match.provider) return;
          events.off(name, listener);
          resolve(event);
        };
        events.on(name, listener);
      });
    },
    configure(settings) {
      if (settings.rpmPerKey !== undefined) limiter.setLimit(settings.rpmPerKey ?? undefined);
      if (settings.chunkDelayMs !== undefined) chunkDelayMs = Math.max(0, settings.chunkDelayMs);
      if (settings.chunkCount !== undefined) defaultChunkCount = settings.chunkCount ?? undefined;
    },
    reset() {
      faults.clear();
      stats.reset();
      limiter.reset();
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const path = queryAt < 0 ? rawUrl : rawUrl.slice(0, queryAt);
    const query = new URLSearchParams(queryAt < 0 ? '' : rawUrl.slice(queryAt + 1));
    const method = req.method ?? 'GET';

    if (path.startsWith('/_mock/')) {
      const body = method === 'GET' || method === 'HEAD' ? undefined : await readBody(req);
      const reply = handleControlRequest(mock, method, path.slice('/_mock'.length), query, body);
      return send(res, reply);
    }

    const dialect = DIALECTS.find((d) => path.startsWith(d.prefix + '/'));
    if (!dialect) return send(res, { status: 404, headers: { 'content-type': 'application/json' }, body: '{"error":"not found"}' });
    const now = clock();
    const endpoint = dialect.route(method, path.slice(dialect.prefix.length), query);
    if (!endpoint) return send(res, dialect.error({ kind: 'notFound', detail: `Unknown request URL: ${method} ${path}`, now }));

    const key = dialect.keyOf(req.headers, query);
    if (key === undefined) {
      stats.noKey();
      return send(res, dialect.error({ kind: 'missingKey', now }));
    }
    const fingerprint = fingerprintCached(key);
    const count = stats.countersFor(fingerprint, maskOf(key), dialect.provider);
    const id = ++serial;
    count('requests');
    let status = 0;
    const streamState = { cut: false };
    const emit = (name: MockEventName) => events.emit(name, { provider: dialect.provider, fingerprint, status } satisfies MockRequestEvent);
    emit('request');
    res.once('close', () => {
      if (streamState.cut) {
        count('cut');
        return emit('cut');
      }
      if (res.writableFinished) {
        if (status < 300) count('completed');
        return emit('finished');
      }
      count('aborted');
      emit('aborted');
    });

    const common = dialect.commonHeaders(id);
    const fail = (info: Omit<MockErrorInfo, 'now'>, extraHeaders: Record<string, string> = {}) => {
      const reply = dialect.error({ ...info, now });
      status = reply.status;
      count('errors');
      if (reply.status === 429) count('rateLimited');
      return send(res, { ...reply, headers: { ...common, ...extraHeaders, ...reply.headers } });
    };

    let bodyJson: unknown;
    if (endpoint.kind === 'chat' || endpoint.kind === 'countTokens' || endpoint.kind === 'embeddings') {
      const text = await readBody(req);
      try {
        bodyJson = JSON.parse(text);
      } catch {
        return fail({ kind: 'badRequest', detail: 'We could not parse the JSON body of your request.' });
      }
    }
    const missing = dialect.missingHeader?.(req.headers);
    if (missing) return fail({ kind: 'badRequest', detail: missing });
    if (!acceptKey(key)) return fail({ kind: 'rejected', mask: maskOf(key) });

    const parsed = endpoint.kind === 'chat' ? dialect.parseChat(bodyJson, endpoint) : undefined;
    const stream = parsed !== undefined && !('error' in parsed) && parsed.stream;
    if (stream) count('streams');
    const model = parsed && !('error' in parsed) ? parsed.model : endpoint.kind === 'models' ? undefined : endpoint.kind === 'countTokens' ? undefined : (endpoint.model ?? modelIn(bodyJson));

    const fault = faults.take(fingerprint, dialect.provider, stream);
    if (fault) count('faults');
    switch (fault?.kind) {
      case 'reject':
        return fail({ kind: fault.status === 403 ? 'forbidden' : 'rejected', mask: maskOf(key) });
      case 'quota':
        return fail({ kind: fault.status === 402 ? 'billing' : 'quota', ...(model ? { model } : {}) });
      case 'rateLimit':
        return fail({ kind: 'rateLimit', retryAfterMs: (fault.retryAfterSeconds ?? 1) * 1000, ...(model ? { model } : {}) });
      case 'serverError':
        return fail({ kind: 'serverError', ...(fault.status ? { status: fault.status } : {}) });
      case 'overloaded':
        return fail({ kind: 'overloaded' });
      case 'stall':
        if (fault.afterChunks === undefined) return; // Say nothing; the close listener counts the abort.
    }

    const verdict = limiter.hit(fingerprint);
    const windowHeaders = verdict ? dialect.windowHeaders(verdict.window, now) : {};
    if (verdict && !verdict.allowed) return fail({ kind: 'rateLimit', window: verdict.window, ...(model ? { model } : {}) });

    if (endpoint.kind === 'embeddings') {
      // Faults and the RPM window above apply as to chat (issue 21: a pool test makes one key 429).
      const reply = dialect.embed?.(bodyJson, endpoint) ?? dialect.error({ kind: 'notFound', detail: `Unknown request URL: ${method} ${path}`, now });
      status = reply.status;
      if (status >= 400) count('errors');
      return send(res, { ...reply, headers: { ...common, ...windowHeaders, ...reply.headers } });
    }
    if (endpoint.kind === 'models') {
      status = 200;
      return send(res, { status, headers: { 'content-type': 'application/json', ...common, ...windowHeaders }, body: dialect.models() });
    }
    if (endpoint.kind === 'countTokens') {
      const reply = dialect.countTokens?.(bodyJson) ?? dialect.error({ kind: 'notFound', detail: `Unknown request URL: ${method} ${path}`, now });
      status = reply.status;
      return send(res, { ...reply, headers: { ...common, ...windowHeaders, ...reply.headers } });
    }
    if (!parsed || 'error' in parsed) return fail({ kind: 'badRequest', detail: parsed?.error ?? 'Invalid request' });

    const chunks = clampChunks(numberHeader(req.headers['x-mock-chunks']) ?? chunkCountFromModel(parsed.model) ?? defaultChunkCount);
    const plan = planAnswer(parsed, chunks, id, now);
    status = 200;
    if (!plan.stream) {
      return send(res, { status, headers: { 'content-type': 'application/json', ...common, ...windowHeaders }, body: dialect.reply(plan) });
    }
    const delay = numberHeader(req.headers['x-mock-chunk-delay-ms']) ?? chunkDelayMs;
    const renderer = dialect.stream(plan, query);
    res.writeHead(200, { 'content-type': renderer.contentType, 'cache-control': 'no-cache', ...common, ...windowHeaders });
    await writeStream(res, plan, renderer, delay, fault, now, streamState);
  }

  const server = createServer((req, res) => {
    openResponses += 1;
    res.once('close', () => (openResponses -= 1));
    handle(req, res).catch((error: unknown) => {
      // Programming errors only: request input is validated. Never echo headers (they hold keys).
      if (!res.headersSent) send(res, { status: 500, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { message: 'mock provider error', detail: String(error).slice(0, 200) } }) });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 30_000;
  // As the gateway's (createGateway.ts): a burst of the gateway's upstream connections must not be reset.
  server.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1', backlog: 4096 });
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? '127.0.0.1';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  mock.url = url;
  mock.port = port;
  mock.baseUrls = { openai: `${url}/openai/v1`, anthropic: `${url}/anthropic`, gemini: `${url}/gemini` };
  return mock;
}

type StreamOutcome = 'ended' | 'cut' | 'stalled' | 'closed';

/**
 * Writes a stream, pausing `delayMs` before each delta. With no pause the frames are joined and
 * written once, which is what makes the mock cheap to benchmark against. Stream faults fire
 * after their `afterChunks` deltas.
 */
async function writeStream(
  res: ServerResponse,
  plan: MockAnswerPlan,
  renderer: MockStreamRenderer,
  delayMs: number,
  fault: MockFault | undefined,
  now: number,
  state: { cut: boolean },
): Promise<StreamOutcome> {
  const faultAt = fault && 'afterChunks' in fault ? (fault.afterChunks ?? 0) : -1;
  const closed = new AbortController();
  res.once('close', () => closed.abort());
  let pending = renderer.head();
  const n = plan.chunks.length;
  for (let i = 0; i <= n; i += 1) {
    if (i === faultAt && fault) {
      switch (fault.kind) {
        case 'cutStream':
          // Flushed to the kernel first, so the client sees exactly `afterChunks` deltas then a dead socket.
          await new Promise<void>((resolve) => res.write(pending, () => resolve()));
          state.cut = true;
          res.socket?.destroy();
          return 'cut';
        case 'stall':
          res.write(pending);
          return 'stalled';
        case 'streamError': {
          const kind = fault.error ?? 'overloaded';
          res.end(pending + renderer.error({ kind, now, model: plan.model, ...(kind === 'rateLimit' ? { retryAfterMs: 1000 } : {}) }));
          return 'ended';
        }
        case 'malformedSse':
          pending += renderer.malformed();
          break;
      }
    }
    if (i === n) break;
    if (delayMs > 0) {
      if (pending) res.write(pending);
      pending = '';
      try {
        await sleep(delayMs, closed.signal);
      } catch {
        return 'closed';
      }
    }
    pending += renderer.delta(plan.chunks[i] as string, i);
  }
  if (closed.signal.aborted) return 'closed';
  res.end(pending + renderer.tail());
  return 'ended';
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function send(res: ServerResponse, reply: MockReply): void {
  res.writeHead(reply.status, { ...reply.headers, 'content-length': Buffer.byteLength(reply.body) });
  res.end(reply.body);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (part: Buffer) => {
      size += part.length;
      if (size > MAX_BODY_BYTES) req.destroy(new Error('request body too large'));
      else parts.push(part);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

/** The `model` field of a request body, for the error texts of faults (embeddings name it in the body). */
function modelIn(body: unknown): string | undefined {
  const model = typeof body === 'object' && body !== null ? (body as { model?: unknown }).model : undefined;
  return typeof model === 'string' ? model : undefined;
}

function numberHeader(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value);
}

function clampChunks(count: number | undefined): number | undefined {
  return count === undefined ? undefined : Math.min(Math.max(1, count), MAX_CHUNKS);
}
