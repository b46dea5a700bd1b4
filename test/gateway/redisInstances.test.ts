import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forEachRedisTopology } from '../support/redisTopologies';
import type { StreamEvent } from '../../shared';
import { startTestGateway, testModel, type TestGateway } from '../support/gatewayHarness';

/**
 * Two gateway instances sharing one Redis (pool, business config, stream buffer): a client whose
 * reconnect lands on the other instance resumes from Redis, without a second upstream call;
 * on a single Redis and on a Redis Cluster (issue 22).
 */

forEachRedisTopology((topology) => {
let a: TestGateway;
let b: TestGateway;

beforeAll(async () => {
  const env = { REDIS_URL: topology.url(), REDIS_PREFIX: `gw-test-${process.pid}-${Date.now()}` };
  const models = [testModel('gpt-4o', 'openai')];
  a = await startTestGateway({ env, models, streams: { detachGraceMs: 60_000 } });
  const clientDir = mkdtempSync(join(tmpdir(), 'keyrack-client-'));
  writeFileSync(join(clientDir, 'index.html'), '<!doctype html><title>Keyrack demo</title>');
  b = await startTestGateway({ env, models, clientDir });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

describe('issue 22: gateway instances on one Redis', () => {
  it('a stream started on A is resumed on B after lastEventId', async () => {
    const token = await a.token('alice');
    const { streamId } = await a.trpc(token).chat.start.mutate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'across instances' }] });
    const items: { id: string; event: StreamEvent }[] = [];
    await new Promise<void>((resolve, reject) => {
      b.trpc(token).chat.stream.subscribe(
        { streamId, lastEventId: '1' },
        { onData: (t) => items.push({ id: t.id, event: t.data }), onError: reject, onComplete: resolve },
      );
    });
    expect(items[0]?.id).toBe('2');
    expect(items.at(-1)?.event).toEqual({ type: 'done', finishReason: 'stop' });
    expect(items.map((i) => (i.event.type === 'delta' ? i.event.text : '')).join('')).toMatch(/^Mock answer to: across instances/);
    expect(a.gateway.mock!.stats().total.requests + b.gateway.mock!.stats().total.requests).toBe(1);
    // Someone else cannot read it on B either.
    const mallory = await a.token('mallory');
    const denied = await new Promise<unknown>((resolve) => {
      void b.trpc(mallory).chat.stream.subscribe({ streamId }, { onError: resolve, onComplete: () => resolve('completed') });
    });
    expect(denied).toMatchObject({ data: { code: 'NOT_FOUND' } });
  });

  it('readyz checks Redis', async () => {
    expect(await (await fetch(`${b.url}/readyz`)).json()).toEqual({ ok: true, checks: { store: 'ok', providers: 'ok' } });
  });

  it('serves the built demo client at / with SPA fallback', async () => {
    for (const path of ['/', '/chat/some-client-route']) {
      const res = await fetch(`${b.url}${path}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('<title>Keyrack demo</title>');
    }
    expect((await fetch(`${b.url}/v1/nope`)).status).toBe(404);
  });
});
});
