import { chatRouter } from './routers/chatRouter';
import { modelsRouter } from './routers/modelsRouter';
import { poolRouter } from './routers/poolRouter';
import { createCallerFactory, router } from './trpc';

/**
 * The gateway's procedures. One sub-router per file in ./routers; later ones (byok, config,
 * usage) are added here. Clients import the type only: `import type { AppRouter } from ...`.
 */
export const appRouter = router({
  chat: chatRouter,
  models: modelsRouter,
  pool: poolRouter,
});

export type AppRouter = typeof appRouter;

/** For tests and server-side calls: `createCaller(ctx).chat.complete(...)`. */
export const createCaller = createCallerFactory(appRouter);
