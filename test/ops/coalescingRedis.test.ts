import type { Socket } from 'node:net';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createGatewayRedis, CoalescingRedis } from '../../server/ops/createGatewayRedis';
import { startRedisServer, type RedisServer } from '../support/redisServer';
import { waitFor } from './waitFor';
import calculateSlot from 'cluster-key-slot';

/**
 * Issue #8: the pool connection sends what one turn of the event loop asks for in one socket
 * write (CoalescingRedis), in order, and stays an ordinary ioredis connection otherwise.
 */

let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  await server?.stop();
});

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('CoalescingRedis', () => {
  it('holds one turn of commands in the socket and writes them together, replies in order', async () => {
    const redis = createGatewayRedis(server.url, { coalesceWrites: true });
    try {
      expect(redis).toBeInstanceOf(CoalescingRedis);
      // Commands fail fast until the connection is ready (no offline queue, as in the gateway).
      await waitFor(() => redis.status === 'ready', 'the connection');
      await nextTurn();
      const socket = (redis as CoalescingRedis).stream as Socket;
      let writes = 0;
      const count = () => (writes += 1);
      // One _writev (or _write) per flush of the socket's buffer: that is one syscall.
      const spy = socket as unknown as { _writev: (...a: unknown[]) => unknown; _write: (...a: unknown[]) => unknown };
      const [writev, write] = [spy._writev.bind(socket), spy._write.bind(socket)];
      spy._writev = (...a) => (count(), writev(...a));
      spy._write = (...a) => (count(), write(...a));

      const replies = Array.from({ length: 50 }, (_, i) => redis.incrby('coalesce:counter', i + 1));
      expect(socket.writableCorked).toBe(1);
      expect(writes).toBe(0);
      const values = await Promise.all(replies);
      expect(writes).toBe(1);
      expect(socket.writableCorked).toBe(0);
      // INCRBY 1, 2, ... 50 applied in the order sent: running sums.
      expect(values).toEqual(Array.from({ length: 50 }, (_, i) => ((i + 1) * (i + 2)) / 2));

      // A later turn is a new write: nothing is held back waiting for more.
      await expect(redis.get('coalesce:counter')).resolves.toBe(String((50 * 51) / 2));
      expect(writes).toBe(2);
    } finally {
      redis.disconnect();
    }
  });

  it('fails fast while Redis is away and serves again once it is back, like any gateway connection', async () => {
    const own = await startRedisServer();
    const redis = createGatewayRedis(own.url, { coalesceWrites: true, maxReconnectDelayMs: 100 });
    try {
      await waitFor(() => redis.status === 'ready', 'the connection');
      await expect(redis.set('k', 'v')).resolves.toBe('OK');
      await own.stop();
      await waitFor(() => redis.status !== 'ready', 'the connection to drop');
      await expect(redis.get('k')).rejects.toThrow();
      const again = await startRedisServer(own.port);
      try {
        await waitFor(() => redis.status === 'ready', 'the reconnect');
        await expect(Promise.all([redis.set('k', 'w'), redis.get('k')])).resolves.toEqual(['OK', 'w']);
      } finally {
        await again.stop();
      }
    } finally {
      redis.disconnect();
    }
  });

  it('on a Redis Cluster (issue 22): each node connection writes a turn of its commands together', async () => {
    const cluster = createGatewayRedis(inject('redisClusterUrl'), { coalesceWrites: true }) as Cluster;
    try {
      await waitFor(() => cluster.status === 'ready', 'the cluster connection');
      // Two keys in different slots (so, with three masters, most likely on different nodes),
      // asked once first so that the connections of their nodes exist and are ready.
      const keys = ['coalesce:{a}', 'coalesce:{b}'];
      await Promise.all(keys.map((k) => cluster.del(k)));
      const serving = new Set(keys.map((k) => cluster.slots[calculateSlot(k)]![0]!));
      let writes = 0;
      for (const node of cluster.nodes('master').filter((n) => serving.has(`${n.options.host}:${n.options.port}`))) {
        await waitFor(() => node.status === 'ready', 'a node connection');
        const spy = node.stream as unknown as { _writev: (...a: unknown[]) => unknown; _write: (...a: unknown[]) => unknown };
        const [writev, write] = [spy._writev.bind(node.stream), spy._write.bind(node.stream)];
        spy._writev = (...a) => ((writes += 1), writev(...a));
        spy._write = (...a) => ((writes += 1), write(...a));
      }
      await nextTurn();
      const replies = keys.flatMap((k) => Array.from({ length: 20 }, (_, i) => cluster.incrby(k, i + 1)));
      const values = await Promise.all(replies);
      // One write per node that had commands, not one per command; replies in order per key.
      expect(writes).toBe(serving.size);
      const sums = Array.from({ length: 20 }, (_, i) => ((i + 1) * (i + 2)) / 2);
      expect(values).toEqual([...sums, ...sums]);
    } finally {
      cluster.disconnect();
    }
  });
});

