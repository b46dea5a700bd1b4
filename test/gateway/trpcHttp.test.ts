import { once } from 'node:events';
import { connect } from 'node:net';
import { TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamEvent } from '../../shared';
import { ALL_CAPABILITIES, startTestGateway, testModel, trpcClientFor, type TestGateway } from '../support/gatewayHarness';

/**
 * The gateway over real HTTP in demo mode (real mock provider, key pool and dispatcher), called
 * through the tRPC client: batched HTTP for mutations, SSE through the `eventsource` package.
 */

let gw: TestGateway;
let alice: string;
let admin: string;
const chat = (model: string, content = 'hello gateway') => ({ model, messages: [{ role: 'user' as const, content }] });

beforeAll(async () => {
  gw = await startTestGateway({
    models: [
      testModel('gpt-4o', 'openai'),
      testModel('claude-sonnet-4', 'anthropic', { upstream_model: 'claude-sonnet-4-20250514' }),
      // The mock streams 10 000 words for this name: a stream that lasts until it is aborted.
      testModel('endless', 'openai', { upstream_model: 'mock-chunks-10000' }),
      testModel('long', 'google', { upstream_model: 'mock-chunks-40' }),
    ],
    streams: { detachGraceMs: 60_000 },
    poolWatchIntervalMs: 50,
  });
  alice = await gw.token('alice');
  admin = await gw.token('root', 'admin');
});
afterAll(() => gw?.close());

type Item = { id: string; event: StreamEvent };

/** Subscribes and collects until `stop(items)` says so or the stream completes. */
function subscribe(client: ReturnType<TestGateway['trpc']>, input: { streamId: string; lastEventId?: string }, stop: (items: Item[]) => boolean = () => false) {
  const items: Item[] = [];
  return new Promise<{ items: Item[]; completed: boolean }>((resolve, reject) => {
    const sub = client.chat.stream.subscribe(input, {
      onData(tracked) {
        items.push({ id: tracked.id, event: tracked.data });
        if (stop(items)) {
          sub.unsubscribe();
          resolve({ items, completed: false });
        }
      },
      onError: reject,
      onComplete: () => resolve({ items, completed: true }),
    });
  });
}

const textOf = (items: Item[]) => items.map((i) => (i.event.type === 'delta' ? i.event.text : '')).join('');

describe('tRPC over HTTP', () => {
  it('streams a chat: start, deltas, usage, done, with ids 1..n', async () => {
    const client = gw.trpc(alice);
    const { streamId } = await client.chat.start.mutate(chat('claude-sonnet-4', 'stream me please'));
    const { items, completed } = await subscribe(client, { streamId });
    expect(completed).toBe(true);
    expect(items.map((i) => i.id)).toEqual(items.map((_, n) => String(n + 1)));
    expect(items[0]?.event).toMatchObject({ type: 'start', provider: 'anthropic', model: 'claude-sonnet-4' });
    expect(items.at(-1)?.event).toEqual({ type: 'done', finishReason: 'stop' });
    expect(items.some((i) => i.event.type === 'usage')).toBe(true);
    expect(textOf(items)).toMatch(/^Mock answer to: stream me please/);
  });

  it("chat.stream honours a client's Connection: close: the socket closes after the stream's end", async () => {
    const { streamId } = await gw.trpc(alice).chat.start.mutate(chat('gpt-4o', 'close after the answer'));
    const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => (received += text));
    const input = encodeURIComponent(JSON.stringify({ streamId }));
    socket.write(`GET /trpc/chat.stream?input=${input} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${alice}\r\naccept: text/event-stream\r\nconnection: close\r\n\r\n`);
    await once(socket, 'end');
    const head = received.slice(0, received.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toMatch(/^http\/1\.1 200 /);
    expect(head).toContain('connection: close');
    expect(received).toContain('event: return');
  });

  it("tRPC's own SSE answers (pool.watch) honour Connection: close too, and stay keep-alive otherwise", async () => {
    const headOf = async (connection: string) => {
      const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
      await once(socket, 'connect');
      let received = '';
      socket.setEncoding('latin1');
      socket.write(`GET /trpc/pool.watch HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${admin}\r\naccept: text/event-stream\r\nconnection: ${connection}\r\n\r\n`);
      // pool.watch never ends by itself: its head is what this is about.
      for await (const text of socket) {
        received += text as string;
        if (received.includes('\r\n\r\n')) break;
      }
      socket.destroy();
      return received.slice(0, received.indexOf('\r\n\r\n')).toLowerCase();
    };
    const closing = await headOf('close');
    expect(closing).toMatch(/^http\/1\.1 200 /);
    expect(closing).toContain('connection: close');
    expect(closing).not.toContain('keep-alive');
    expect(await headOf('keep-alive')).toContain('connection: keep-alive');
  });

  it('a reconnect with lastEventId resumes with the next event; upstream is called once', async () => {
    gw.gateway.mock!.reset();
    gw.gateway.mock!.configure({ chunkDelayMs: 5 });
    try {
      const client = gw.trpc(alice);
      const { streamId } = await client.chat.start.mutate(chat('long', 'resume me'));
      const first = await subscribe(client, { streamId }, (items) => items.length === 4);
      const lastEventId = first.items.at(-1)!.id;
      const rest = await subscribe(client, { streamId, lastEventId });
      expect(rest.completed).toBe(true);
      const ids = [...first.items, ...rest.items].map((i) => Number(i.id));
      expect(ids).toEqual(ids.map((_, n) => n + 1)); // no gap, no repeat
      expect(textOf([...first.items, ...rest.items]).split(' ')).toHaveLength(40);
      expect(gw.gateway.mock!.stats().total.requests).toBe(1);
    } finally {
      gw.gateway.mock!.configure({ chunkDelayMs: 0 });
    }
  });

  it("another user cannot read a stream (NOT_FOUND), and it is not retried", async () => {
    const { streamId } = await gw.trpc(alice).chat.start.mutate(chat('gpt-4o'));
    const error = await subscribe(gw.trpc(await gw.token('mallory')), { streamId }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    expect((error as TRPCClientError<never>).data).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('chat.complete answers whole', async () => {
    const answer = await gw.trpc(alice).chat.complete.mutate(chat('gpt-4o', 'whole please'));
    expect(answer).toMatchObject({ provider: 'openai', model: 'gpt-4o', finishReason: 'stop' });
    expect(answer.text).toMatch(/^Mock answer to: whole please/);
    expect(answer.usage?.outputTokens).toBeGreaterThan(0);
  });

  it('invalid input is BAD_REQUEST with zod issues in error data', async () => {
    const error = (await gw.trpc(alice).chat.complete.mutate({ model: 'gpt-4o', messages: [] }).catch((e: unknown) => e)) as TRPCClientError<never>;
    expect(error.data).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 });
    expect((error.data as unknown as { zodIssues: { path: string[] }[] }).zodIssues[0]?.path).toEqual(['messages']);
  });

  it('an unknown model is NOT_FOUND with gatewayCode not_found', async () => {
    const error = (await gw.trpc(alice).chat.start.mutate(chat('no-such-model')).catch((e: unknown) => e)) as TRPCClientError<never>;
    expect(error.data).toMatchObject({ code: 'NOT_FOUND', gatewayCode: 'not_found' });
  });

  it('refuses missing, expired and forged tokens (UNAUTHORIZED) and users on admin procedures (FORBIDDEN)', async () => {
    const forged = alice.slice(0, -4) + (alice.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const expired = await gw.token('alice', 'user', -60);
    for (const token of ['', forged, expired]) {
      const error = (await trpcClientFor(`${gw.url}/trpc`, () => token).models.list.query().catch((e: unknown) => e)) as TRPCClientError<never>;
      expect(error.data).toMatchObject({ code: 'UNAUTHORIZED', httpStatus: 401 });
    }
    const subError = (await subscribe(gw.trpc(expired), { streamId: crypto.randomUUID() }).catch((e: unknown) => e)) as TRPCClientError<never>;
    expect(subError.data).toMatchObject({ code: 'UNAUTHORIZED' });
    const forbidden = (await gw.trpc(alice).pool.status.query().catch((e: unknown) => e)) as TRPCClientError<never>;
    expect(forbidden.data).toMatchObject({ code: 'FORBIDDEN', httpStatus: 403 });
  });

  it('unsubscribing aborts the upstream call once no subscriber is left', async () => {
    const local = await startTestGateway({
      models: [testModel('endless', 'openai', { upstream_model: 'mock-chunks-10000' })],
      streams: { detachGraceMs: 0 },
      mockChunkDelayMs: 5,
    });
    try {
      const client = local.trpc(await local.token('alice'));
      const aborted = local.gateway.mock!.nextEvent('aborted');
      const { streamId } = await client.chat.start.mutate(chat('endless'));
      await subscribe(client, { streamId }, (items) => items.length === 3);
      expect((await aborted).provider).toBe('openai');
      expect(local.gateway.mock!.stats().total.completed).toBe(0);
    } finally {
      await local.close();
    }
  });

  it('models.list lists the catalog', async () => {
    const models = await gw.trpc(alice).models.list.query();
    expect(models.map((m) => m.id).sort()).toEqual(['claude-sonnet-4', 'endless', 'gpt-4o', 'long']);
    expect(models.find((m) => m.id === 'gpt-4o')).toEqual({ id: 'gpt-4o', provider: 'openai', displayName: 'gpt-4o', inputPrice: 1, outputPrice: 2, capabilities: ALL_CAPABILITIES, kind: 'chat' });
  });

  it('pool.watch pushes at once, then on change; pool.setKeyEnabled takes a key out', async () => {
    const client = gw.trpc(admin);
    const status = await client.pool.status.query();
    const openai = status.providers.find((p) => p.provider === 'openai')!;
    expect(openai.keys).toHaveLength(2);
    const fingerprint = openai.keys[0]!.fingerprint;
    const pushes: { disabled: number }[] = [];
    await new Promise<void>((resolve, reject) => {
      const sub = client.pool.watch.subscribe(undefined, {
        onData(s) {
          const disabled = s.providers.find((p) => p.provider === 'openai')!.totals.disabled;
          pushes.push({ disabled });
          if (pushes.length === 1) void client.pool.setKeyEnabled.mutate({ provider: 'openai', fingerprint, enabled: false }).catch(reject);
          if (disabled === 1) {
            sub.unsubscribe();
            resolve();
          }
        },
        onError: reject,
      });
    });
    expect(pushes[0]).toEqual({ disabled: 0 });
    expect(pushes.at(-1)).toEqual({ disabled: 1 });
    await client.pool.setKeyEnabled.mutate({ provider: 'openai', fingerprint, enabled: true });
  });
});
