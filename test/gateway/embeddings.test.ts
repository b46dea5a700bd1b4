import { TRPCClientError } from '@trpc/client';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fingerprintOf } from '../../server/pool/keyIdentity';
import { mockEmbedding } from '../../server/mock-provider/wire/embeddingsMock';
import { startTestGateway, type TestGateway } from '../support/gatewayHarness';

/**
 * issue 21: /v1/embeddings and embeddings.create through a real gateway over HTTP (demo mode:
 * the real mock provider, two fake keys per provider, the key pool and the usage ledger), with
 * the official openai client.
 */

let gw: TestGateway;
let admin: string;
beforeAll(async () => {
  gw = await startTestGateway();
  admin = await gw.token('root', 'admin');
});
afterAll(() => gw?.close());
afterEach(() => gw.gateway.mock!.reset());

const mock = () => gw.gateway.mock!;
const served = (key: string) => mock().statsFor(key).total.completed;
const vectorNorm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

async function post(token: string, body: unknown): Promise<{ status: number; json: { error?: { message: string; param: string | null; code: string | null } } & Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as never, headers: res.headers };
}

describe('issue 21: POST /v1/embeddings with the official openai client', () => {
  it('base64 (the SDK default) and float answer the same unit vectors, in input order, with usage', async () => {
    const openai = gw.openai(await gw.token('emb-1'));
    const viaBase64 = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'] });
    const viaFloat = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'], encoding_format: 'float' });
    for (const answer of [viaBase64, viaFloat]) {
      expect(answer).toMatchObject({ object: 'list', model: 'text-embedding-3-small', usage: { prompt_tokens: 3, total_tokens: 3 } });
      expect(answer.data.map((d) => [d.object, d.index, d.embedding.length])).toEqual([
        ['embedding', 0, 1536],
        ['embedding', 1, 1536],
      ]);
    }
    // The mock's vectors are the float32 values; base64 carries exactly those bytes.
    expect(viaBase64.data[0]!.embedding).toEqual(Array.from(mockEmbedding('text-embedding-3-small', 'alpha', 1536)));
    expect(viaFloat.data[1]!.embedding).toEqual(viaBase64.data[1]!.embedding);
    expect(vectorNorm(viaFloat.data[0]!.embedding)).toBeCloseTo(1, 5);
  });

  it('a string input and dimensions', async () => {
    const openai = gw.openai(await gw.token('emb-2'));
    const answer = await openai.embeddings.create({ model: 'text-embedding-3-large', input: 'one text', dimensions: 256, encoding_format: 'float' });
    expect(answer.data).toHaveLength(1);
    expect(answer.data[0]!.embedding).toHaveLength(256);
    expect(vectorNorm(answer.data[0]!.embedding)).toBeCloseTo(1, 5);
  });

  it('a Gemini model through the gateway (batchEmbedContents, more inputs than one Gemini batch), usage estimated', async () => {
    const openai = gw.openai(await gw.token('emb-3'));
    const inputs = Array.from({ length: 150 }, (_, i) => `text number ${i}`);
    const answer = await openai.embeddings.create({ model: 'gemini-embedding-001', input: inputs, dimensions: 768, encoding_format: 'float' });
    expect(answer.data).toHaveLength(150);
    expect(answer.data[149]!.embedding).toEqual(Array.from(mockEmbedding('gemini-embedding-001', 'text number 149', 768)));
    // Gemini reports no tokens: ESTIMATED_BYTES_PER_TOKEN (4) bytes per token, at least one per input.
    expect(answer.usage.prompt_tokens).toBe(inputs.reduce((n, t) => n + Math.ceil(Buffer.byteLength(t) / 4), 0));
  });

  it('Mistral (OpenAI-compatible) serves mistral-embed, which refuses dimensions before any upstream call', async () => {
    const openai = gw.openai(await gw.token('emb-4'));
    const answer = await openai.embeddings.create({ model: 'mistral-embed', input: 'bonjour', encoding_format: 'float' });
    expect(answer.data[0]!.embedding).toHaveLength(1024);
    const before = mock().stats().total.requests;
    const refused = await post(await gw.token('emb-4'), { model: 'mistral-embed', input: 'bonjour', dimensions: 64 });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ param: 'dimensions', code: 'bad_request' });
    expect(mock().stats().total.requests).toBe(before);
  });

  it('a 429 on one key moves to the next key; the limited key cools down', async () => {
    const openai = gw.openai(await gw.token('emb-5'));
    mock().faults.inject('sk-test-demo-openai-1', { kind: 'rateLimit', retryAfterSeconds: 30 }, { sticky: true });
    for (let i = 0; i < 3; i++) {
      const answer = await openai.embeddings.create({ model: 'text-embedding-3-small', input: `retry ${i}`, encoding_format: 'float' });
      expect(answer.data).toHaveLength(1);
    }
    expect(served('sk-test-demo-openai-2')).toBe(3);
    expect(served('sk-test-demo-openai-1')).toBe(0);
    // At most one 429 from the limited key: after it, the pool cools it down and does not pick it again.
    expect(mock().statsFor('sk-test-demo-openai-1').total.rateLimited).toBe(1);
    const keys = (await gw.gateway.pool.status()).providers.find((p) => p.provider === 'openai')!.keys;
    expect(keys.find((k) => k.fingerprint === fingerprintOf('sk-test-demo-openai-1'))).toMatchObject({ status: 'cooling', reason: 'rate_limited' });
    // RPM per pick and TPM with the reported tokens, as for chat.
    expect(keys.find((k) => k.fingerprint === fingerprintOf('sk-test-demo-openai-2'))!.tokensThisWindow).toBeGreaterThan(0);
    mock().faults.clear();
  });

  it('usage shows up in the ledger at the catalog price (markup included)', async () => {
    const token = await gw.token('emb-6');
    const answer = await gw.openai(token).embeddings.create({ model: 'text-embedding-3-small', input: 'price this text please', encoding_format: 'float' });
    const tokens = answer.usage.prompt_tokens;
    const mine = await gw.trpc(token).usage.mine.query();
    // text-embedding-3-small: $0.02 per million input tokens; markup 30%.
    expect(mine).toMatchObject({ requests: 1, inputTokens: tokens, outputTokens: 0 });
    expect(mine.costUsd).toBeCloseTo(Math.round(((tokens * 0.02) / 1e6) * 1.3 * 1e9) / 1e9, 9);
  });

  it('a user over the daily budget is refused with 429 and Retry-After; over the RPM limit too', async () => {
    await gw.trpc(admin).users.setLimits.mutate({ userId: 'emb-poor', limits: { dailyBudgetUsd: 0 } });
    const poor = await post(await gw.token('emb-poor'), { model: 'text-embedding-3-small', input: 'x' });
    expect(poor.status).toBe(429);
    expect(poor.json.error).toMatchObject({ code: 'budget_exceeded', type: 'insufficient_quota' });
    expect(Number(poor.headers.get('retry-after'))).toBeGreaterThan(0);

    await gw.trpc(admin).users.setLimits.mutate({ userId: 'emb-fast', limits: { rpm: 1 } });
    const fast = await gw.token('emb-fast');
    expect((await post(fast, { model: 'text-embedding-3-small', input: 'x' })).status).toBe(200);
    const second = await post(fast, { model: 'text-embedding-3-small', input: 'x' });
    expect(second.status).toBe(429);
    expect(second.json.error?.code).toBe('rate_limited');
    expect(second.headers.get('retry-after')).not.toBeNull();
  });

  it('bad input is a 400 naming the field, before any upstream call', async () => {
    const token = await gw.token('emb-7');
    const before = mock().stats().total.requests;
    const cases: [unknown, string][] = [
      [{ model: 'text-embedding-3-small', input: 'x', colour: 'blue' }, 'colour'],
      [{ model: 'text-embedding-3-small', input: 42 }, 'input'],
      [{ model: 'text-embedding-3-small', input: [1, 2, 3] }, 'input'],
      [{ model: 'text-embedding-3-small', input: [[1, 2]] }, 'input'],
      [{ model: 'text-embedding-3-small', input: ['ok', ''] }, 'input[1]'],
      [{ model: 'text-embedding-3-small', input: [] }, 'input'],
      [{ model: 'text-embedding-3-small', input: Array.from({ length: 2049 }, () => 'x') }, 'input'],
      [{ model: 'text-embedding-3-small', input: 'x', encoding_format: 'int8' }, 'encoding_format'],
      [{ model: 'text-embedding-3-small', input: 'x', dimensions: 0 }, 'dimensions'],
      [{ model: 'text-embedding-3-small', input: 'x', dimensions: 4096 }, 'dimensions'],
      [{ model: 'gpt-4o', input: 'x' }, 'model'],
      [{ input: 'x' }, 'model'],
    ];
    for (const [body, param] of cases) {
      const res = await post(token, body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.json.error?.param, JSON.stringify(body).slice(0, 80)).toBe(param);
    }
    expect(mock().stats().total.requests).toBe(before);
    const unknown = await post(token, { model: 'no-such-embedder', input: 'x' });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatchObject({ code: 'model_not_found', param: 'model' });
  });

  it('a chat on an embedding model is a 400 naming model; both kinds are listed by GET /v1/models', async () => {
    const openai = gw.openai(await gw.token('emb-8'));
    const error = await openai.chat.completions.create({ model: 'text-embedding-3-small', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(400);
    expect((error as InstanceType<typeof OpenAI.APIError>).param).toBe('model');
    const ids = (await openai.models.list()).data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['gpt-4o', 'text-embedding-3-small', 'text-embedding-3-large', 'mistral-embed', 'gemini-embedding-001']));
  });
});

describe('issue 21: tRPC embeddings.create', () => {
  it('answers float vectors, usage and cost, and names the field of a bad input', async () => {
    const token = await gw.token('emb-trpc');
    const client = gw.trpc(token);
    const answer = await client.embeddings.create.mutate({ model: 'text-embedding-3-small', input: ['a', 'b', 'c'], dimensions: 8 });
    expect(answer.model).toBe('text-embedding-3-small');
    expect(answer.embeddings).toHaveLength(3);
    expect(answer.embeddings[2]).toEqual(Array.from(mockEmbedding('text-embedding-3-small', 'c', 8)));
    expect(answer.usage).toEqual({ inputTokens: 3, estimated: false });
    expect(answer.costUsd).toBeGreaterThan(0);
    const refused = await client.embeddings.create.mutate({ model: 'gpt-4o', input: 'x' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TRPCClientError);
    expect((refused as TRPCClientError<never>).data).toMatchObject({ code: 'BAD_REQUEST', gatewayCode: 'bad_request' });
    const empty = await client.embeddings.create.mutate({ model: 'text-embedding-3-small', input: '' }).catch((e: unknown) => e);
    expect((empty as TRPCClientError<never>).data).toMatchObject({ code: 'BAD_REQUEST' });
    expect(((empty as TRPCClientError<never>).data as unknown as { zodIssues?: { path: unknown[] }[] }).zodIssues?.[0]?.path).toEqual(['input']);
  });
});
