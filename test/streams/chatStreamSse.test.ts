import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * The chat.stream fast path (server/streams/chatStreamSse.ts) must be byte-for-byte what tRPC's
 * own SSE producer sends, since httpSubscriptionLink reads both. A request with an Origin header
 * is left to tRPC, which gives the reference to compare with.
 */

let gw: TestGateway;
let alice: string;

beforeAll(async () => {
  gw = await startTestGateway({ models: [testModel('gpt-4o', 'openai')], streams: { detachGraceMs: 60_000 } });
  alice = await gw.token('alice');
});
afterAll(() => gw?.close());

async function start(token: string): Promise<string> {
  return (await startAnswer(token)).streamId;
}

async function startAnswer(token: string): Promise<{ streamId: string; events: { id: string; event: { type: string } }[] }> {
  const res = await request(`${gw.url}/trpc/chat.start`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    // Quotes, escapes, a control character and non-ASCII in the echoed text: the fast path writes deltas' JSON itself.
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'fast path please: "quoted" \\ back\nslash é 😀 \u0001' }] }),
  });
  const body = (await res.body.json()) as { result: { data: { streamId: string; events: { id: string; event: { type: string } }[] } } };
  return body.result.data;
}

async function readStream(streamId: string, headers: Record<string, string>, lastEventId?: string) {
  const input = encodeURIComponent(JSON.stringify({ streamId }));
  const res = await request(`${gw.url}/trpc/chat.stream?input=${input}`, {
    headers: { accept: 'text/event-stream', ...headers, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
  });
  return { status: res.statusCode, contentType: res.headers['content-type'], requestId: res.headers['x-request-id'], text: await res.body.text() };
}

describe('chat.stream fast path', () => {
  it('sends what tRPC sends: connected, tracked events, return', async () => {
    const streamId = await start(alice);
    const fast = await readStream(streamId, { authorization: `Bearer ${alice}` });
    const viaTrpc = await readStream(streamId, { authorization: `Bearer ${alice}`, origin: 'http://elsewhere.test' });
    expect(fast.status).toBe(200);
    expect(fast.contentType).toBe(viaTrpc.contentType);
    expect(fast.requestId).toBeTruthy();
    expect(fast.text).toBe(viaTrpc.text);
    expect(fast.text.startsWith('event: connected\ndata: {"reconnectAfterInactivityMs":25000}\n\n\n')).toBe(true);
    expect(fast.text).toMatch(/data: \{"type":"start".*\}\nid: 1\n\n\n/);
    // The echoed prompt reached the deltas with its escapes.
    expect(fast.text).toContain('\\"quoted\\"');
    expect(fast.text).toContain('\\u0001');
    expect(fast.text.endsWith('event: return\ndata: \n\n\n')).toBe(true);
  });

  it("chat.start's answer carries the stream's first events, as chat.stream sends them under the same ids", async () => {
    const { streamId, events } = await startAnswer(alice);
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => String(i + 1)));
    expect(events[0]!.event.type).toBe('start');
    const stream = await readStream(streamId, { authorization: `Bearer ${alice}` });
    for (const { id, event } of events) expect(stream.text).toContain(`data: ${JSON.stringify(event)}\nid: ${id}\n\n\n`);
  });

  it('resumes after Last-Event-ID like tRPC does', async () => {
    const streamId = await start(alice);
    const fast = await readStream(streamId, { authorization: `Bearer ${alice}` }, '2');
    const viaTrpc = await readStream(streamId, { authorization: `Bearer ${alice}`, origin: 'http://elsewhere.test' }, '2');
    expect(fast.text).toBe(viaTrpc.text);
    expect(fast.text).not.toMatch(/\nid: [12]\n/);
    expect(fast.text).toMatch(/\nid: 3\n/);
  });

  it("leaves refusals to tRPC: someone else's stream, no token, bad input", async () => {
    const streamId = await start(alice);
    const bob = await gw.token('bob');
    for (const headers of [{ authorization: `Bearer ${bob}` }, {}] as Record<string, string>[]) {
      const fast = await readStream(streamId, headers);
      const viaTrpc = await readStream(streamId, { ...headers, origin: 'http://elsewhere.test' });
      expect(fast.text.replace(/"requestId":"[^"]+"/g, '')).toBe(viaTrpc.text.replace(/"requestId":"[^"]+"/g, ''));
      expect(fast.text).toContain('serialized-error');
    }
    const bad = await request(`${gw.url}/trpc/chat.stream?input=${encodeURIComponent('{"streamId":"nope"}')}`, { headers: { authorization: `Bearer ${alice}` } });
    expect(await bad.body.text()).toContain('serialized-error');
  });
});
