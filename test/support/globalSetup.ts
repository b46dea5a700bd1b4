import type { TestProject } from 'vitest/node';
import { startRedisCluster, type RedisCluster } from './redisCluster';
import { startRedisServer, type RedisServer } from './redisServer';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A Redis the whole run may use; each test file namespaces its keys. */
    redisUrl: string;
    /** A Redis Cluster (3 masters) the whole run may use, `redis+cluster://...` (issue 22). */
    redisClusterUrl: string;
  }
}

let server: RedisServer | undefined;
let cluster: RedisCluster | undefined;

/**
 * One Redis and one Redis Cluster for the run: REDIS_URL / REDIS_CLUSTER_URL when given, else a
 * throwaway redis-server and a throwaway local 3-master cluster on free ports.
 */
export async function setup(project: TestProject): Promise<void> {
  const given = process.env.REDIS_URL;
  const givenCluster = process.env.REDIS_CLUSTER_URL;
  const [s, c] = await Promise.all([given ? undefined : startRedisServer(), givenCluster ? undefined : startRedisCluster()]);
  server = s;
  cluster = c;
  project.provide('redisUrl', given ?? s!.url);
  project.provide('redisClusterUrl', givenCluster ?? c!.url);
}

export async function teardown(): Promise<void> {
  await Promise.all([server?.stop(), cluster?.stop()]);
}
