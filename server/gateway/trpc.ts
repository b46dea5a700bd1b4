import { initTRPC, TRPCError } from '@trpc/server';
import { z } from 'zod';
import type { GatewayErrorData } from '../../shared/api';
import { refusalMessage } from '../auth/tokens';
import type { GatewayContext } from './context';
import { GatewayFailure } from './gatewayFailure';

const t = initTRPC.context<GatewayContext>().create({
  errorFormatter({ shape, error, ctx }) {
    const extra: GatewayErrorData = {};
    const cause = error.cause;
    if (error.code === 'BAD_REQUEST' && cause instanceof z.ZodError) extra.zodIssues = cause.issues;
    if (cause instanceof GatewayFailure) {
      extra.gatewayCode = cause.code;
      if (cause.retryAfterMs !== undefined) extra.retryAfterMs = cause.retryAfterMs;
    }
    if (ctx?.requestId) extra.requestId = ctx.requestId;
    // No stack traces on the wire, whatever NODE_ENV says.
    const { stack: _stack, ...data } = shape.data;
    return { ...shape, data: { ...data, ...extra } };
  },
  isDev: false,
  sse: {
    // Pings keep proxies from closing a quiet stream (a slow first token).
    ping: { enabled: true, intervalMs: 10_000 },
    client: { reconnectAfterInactivityMs: 25_000 },
  },
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;
export const publicProcedure = t.procedure;

export const authedProcedure = t.procedure.use(({ ctx, next }) => {
  if (!ctx.user) throw new TRPCError({ code: 'UNAUTHORIZED', message: refusalMessage(ctx.authRefusal ?? 'missing') });
  return next({ ctx: { ...ctx, user: ctx.user } });
});

export const adminProcedure = authedProcedure.use(({ ctx, next }) => {
  if (ctx.user.role !== 'admin') throw new TRPCError({ code: 'FORBIDDEN', message: 'admin role required' });
  return next();
});
