import { byokRouter } from './routers/byokRouter';
import { chatRouter } from './routers/chatRouter';
import { configRouter } from './routers/configRouter';
import { embeddingsRouter } from './routers/embeddingsRouter';
import { modelsRouter } from './routers/modelsRouter';
import { poolRouter } from './routers/poolRouter';
import { usageRouter } from './routers/usageRouter';
import { usersRouter } from './routers/usersRouter';
import { createCallerFactory, router } from './trpc';

/**
 * The gateway's procedures. One sub-router per file in ./routers; each added here. Clients import the type only: `import type { AppRouter } from ...`.
 */
export const appRouter = router({
  chat: chatRouter,
  embeddings: embeddingsRouter,
  models: modelsRouter,
  pool: poolRouter,
  byok: byokRouter,
  config: configRouter,
  usage: usageRouter,
  users: usersRouter,
});

export type AppRouter = typeof appRouter;

/** For tests and server-side calls: `createCaller(ctx).chat.complete(...)`. */
export const createCaller = createCallerFactory(appRouter);
