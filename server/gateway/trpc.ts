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
    // An unexpected failure's own message can carry internals (a file path, a store reply, an
    // upstream body that echoes a key): the caller gets a generic message and the request id;
    // the real message goes to the (redacted) log in the HTTP handler's onError.
    const message = isUnexpected(error) ? INTERNAL_ERROR_MESSAGE : shape.message;
    return { ...shape, message, data: { ...data, ...extra } };
  },
  isDev: false,
  sse: {
    // Pings keep proxies from closing a quiet stream (a slow first token).
    ping: { enabled: true, intervalMs: 10_000 },
    client: { reconnectAfterInactivityMs: 25_000 },
  },
});

/** What a caller reads for any failure the gateway did not mean to report. */
export const INTERNAL_ERROR_MESSAGE = 'internal error; quote the request id when reporting it';

/** An INTERNAL_SERVER_ERROR is deliberate only when the gateway raised it with a GatewayFailure. */
function isUnexpected(error: TRPCError): boolean {
  return error.code === 'INTERNAL_SERVER_ERROR' && !(error.cause instanceof GatewayFailure);
}

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
