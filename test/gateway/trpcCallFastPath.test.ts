import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * chat.start skips tRPC's HTTP adapter (server/gateway/http/trpcCallFastPath.ts). Its answers must
 * be what tRPC's adapter sends, since httpBatchLink and other clients read both: the same request
 * goes to a gateway with the fast path and to one without, and the answers are compared.
 */

let fast: TestGateway;
let viaTrpc: TestGateway;

beforeAll(async () => {
  const models = [testModel('gpt-4o', 'openai')];
  [fast, viaTrpc] = await Promise.all([startTestGateway({ models }), startTestGateway({ models, http: { trpcFastPath: false } })]);
});
afterAll(async () => {
  await Promise.all([fast?.close(), viaTrpc?.close()]);
});

interface Answer {
  status: number;
  contentType: string | undefined;
  vary: string | undefined;
  body: string;
}

async function post(gw: TestGateway, path: string, body: string, headers: Record<string, string>): Promise<Answer> {
  const res = await request(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'req-compare-1', ...headers }, body });
  return { status: res.statusCode, contentType: res.headers['content-type'] as string | undefined, vary: res.headers.vary as string | undefined, body: await res.body.text() };
}

/**
 * Stream ids are random, and how many events chat.start brings depends on how the upstream's
 * bytes arrived: compare everything else.
 */
const comparable = (a: Answer) => ({
  ...a,
  body: a.body.replace(/"streamId":"[0-9a-f-]+"/g, '"streamId":"<id>"').replace(/"events":\[.*?\]\}(?=\}|,)/g, '"events":"<events>"}'),
});

describe('chat.start fast path', () => {
  const input = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'compare me' }] };
  const cases: [string, string, string, 'user' | null][] = [
    ['success', '/trpc/chat.start', JSON.stringify(input), 'user'],
    ['success, batched', '/trpc/chat.start?batch=1', JSON.stringify({ 0: input }), 'user'],
    ['unknown model', '/trpc/chat.start', JSON.stringify({ ...input, model: 'nope' }), 'user'],
    ['unknown model, batched', '/trpc/chat.start?batch=1', JSON.stringify({ 0: { ...input, model: 'nope' } }), 'user'],
    ['invalid input', '/trpc/chat.start', JSON.stringify({ model: 'gpt-4o', messages: [] }), 'user'],
    ['invalid input, batched', '/trpc/chat.start?batch=1', JSON.stringify({ 0: { messages: 'x' } }), 'user'],
    ['no token', '/trpc/chat.start', JSON.stringify(input), null],
  ];
  for (const [name, path, body, who] of cases) {
    it(`answers like tRPC: ${name}`, async () => {
      const headersFor = async (gw: TestGateway): Promise<Record<string, string>> => (who ? { authorization: `Bearer ${await gw.token('alice')}` } : {});
      const mine = await post(fast, path, body, await headersFor(fast));
      const theirs = await post(viaTrpc, path, body, await headersFor(viaTrpc));
      expect(comparable(mine)).toEqual(comparable(theirs));
      if (name.startsWith('success')) expect(mine.status).toBe(200);
      else expect(mine.status).toBeGreaterThanOrEqual(400);
    });
  }

  it('answers like tRPC for a body that is not JSON', async () => {
    const token = await fast.token('alice');
    const mine = await post(fast, '/trpc/chat.start', '{not json', { authorization: `Bearer ${token}` });
    const theirs = await post(viaTrpc, '/trpc/chat.start', '{not json', { authorization: `Bearer ${await viaTrpc.token('alice')}` });
    expect(mine).toEqual(theirs);
    expect(mine.status).toBe(400);
  });

  it('a started stream is readable over chat.stream, and the typed client works through it', async () => {
    const alice = fast.trpc(await fast.token('alice'));
    const { streamId } = await alice.chat.start.mutate(input);
    const events: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const sub = alice.chat.stream.subscribe(
        { streamId },
        {
          onData: ({ data }) => {
            events.push(data.type);
            if (data.type === 'done' || data.type === 'error') {
              sub.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        },
      );
    });
    expect(events[0]).toBe('start');
    expect(events.at(-1)).toBe('done');
  });
});
