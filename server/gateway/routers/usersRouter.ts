import { setUserLimitsInputSchema, userIdSchema } from '../../../shared/usage';
import { z } from 'zod';
import { adminProcedure, router } from '../trpc';
import { domainCall, domainOf } from './domainErrors';

/** Per-user limits (requests per minute, daily budget), set by admins. */
export const usersRouter = router({
  setLimits: adminProcedure.input(setUserLimitsInputSchema).mutation(({ ctx, input }) =>
    domainCall(async () => {
      const limits = await domainOf(ctx).ledger.setLimits(input.userId, input.limits);
      ctx.deps.logger.info({ userId: input.userId, by: ctx.user.id }, 'user limits changed');
      return limits;
    }),
  ),

  limits: adminProcedure.input(z.object({ userId: userIdSchema })).query(({ ctx, input }) => domainCall(() => domainOf(ctx).ledger.getLimits(input.userId))),
});
