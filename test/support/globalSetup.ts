import type { TestProject } from 'vitest/node';
import { startRedisServer, type RedisServer } from './redisServer';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A Redis the whole run may use; each test file namespaces its keys. */
    redisUrl: string;
  }
}

let server: RedisServer | undefined;

/** One Redis for the run: REDIS_URL when given, else a throwaway redis-server on a free port. */
export async function setup(project: TestProject): Promise<void> {
  const given = process.env.REDIS_URL;
  if (given) {
    project.provide('redisUrl', given);
    return;
  }
  server = await startRedisServer();
  project.provide('redisUrl', server.url);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
