import { createTRPCClient, httpBatchLink, TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyrackClient } from '../../client/sdk/createKeyrackClient';
import { MAX_TRPC_BATCH_SIZE } from '../../shared/transport';
import type { AppRouter } from '../../server/gateway/router';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/** Issue 24.11: one tRPC request ran 100 upstream calls; batches are capped at MAX_TRPC_BATCH_SIZE. */

let gw: TestGateway;
let alice: string;
const chat = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'batched' }] };
const upstreamCalls = () => gw.gateway.mock!.stats().total.requests;

beforeAll(async () => {
  gw = await startTestGateway({ models: [testModel('gpt-4o', 'openai')] });
  alice = await gw.token('alice');
});
afterAll(() => gw?.close());

function batchOf(procedure: string, n: number, separator = ','): { path: string; body: string } {
  const inputs = Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), chat]));
  return { path: `/trpc/${Array.from({ length: n }, () => procedure).join(separator)}?batch=1`, body: JSON.stringify(inputs) };
}

const post = (path: string, body: string) =>
  fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` }, body });

describe('issue 24.11: tRPC batch size', () => {
  it('issue 24.11: a tRPC batch of more than 10 calls is refused with 400 before any of them runs', async () => {
    expect(MAX_TRPC_BATCH_SIZE).toBe(10);
    const before = upstreamCalls();
    // chat.start is served by the fast path when alone: a batch of it goes through the same check.
    for (const [procedure, separator] of [['chat.complete', ','], ['chat.start', ','], ['chat.complete', '%2C']] as const) {
      const { path, body } = batchOf(procedure, 100, separator);
      const res = await post(path, body);
      expect(res.status, `${procedure} ${separator}`).toBe(400);
      const json = (await res.json()) as { error: { message: string; data: { code: string; httpStatus: number; requestId: string } } };
      expect(json.error.message).toMatch(/at most 10 procedure calls, this one has 100/);
      expect(json.error.data).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400, requestId: res.headers.get('x-request-id') });
    }
    const get = await fetch(`${gw.url}/trpc/${Array.from({ length: 11 }, () => 'models.list').join(',')}?batch=1`, { headers: { authorization: `Bearer ${alice}` } });
    expect(get.status).toBe(400);
    expect(upstreamCalls()).toBe(before);
  });

  it('a batch of 10 is served', async () => {
    const { path, body } = batchOf('chat.complete', 10);
    const res = await post(path, body);
    expect(res.status).toBe(200);
    expect((await res.json()) as unknown[]).toHaveLength(10);
  });

  it('a tRPC client that batches more gets a TRPCClientError per call; the SDK splits its batches and is served', async () => {
    const plain = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${gw.url}/trpc`, headers: { authorization: `Bearer ${alice}` } })] });
    const refused = await Promise.allSettled(Array.from({ length: 11 }, () => plain.models.list.query()));
    for (const r of refused) {
      expect(r.status).toBe('rejected');
      const reason = (r as PromiseRejectedResult).reason as TRPCClientError<AppRouter>;
      expect(reason).toBeInstanceOf(TRPCClientError);
      expect(reason.message).toMatch(/at most 10/);
    }
    const sdk = createKeyrackClient({ url: `${gw.url}/trpc`, getToken: () => alice });
    const served = await Promise.all(Array.from({ length: 25 }, () => sdk.models.list.query()));
    expect(served).toHaveLength(25);
  });
});
