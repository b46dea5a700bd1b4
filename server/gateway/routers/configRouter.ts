import { setBusinessSettingInputSchema } from '../../../shared/business';
import { adminProcedure, router } from '../trpc';
import { domainCall, domainOf } from './domainErrors';

/** Business config (prompt limits, expected output, markup, models): admins only; applies to the next request on every instance. */
export const configRouter = router({
  get: adminProcedure.query(({ ctx }) => domainCall(() => domainOf(ctx).business.getConfig())),

  set: adminProcedure.input(setBusinessSettingInputSchema).mutation(({ ctx, input }) =>
    domainCall(async () => {
      const settings = await domainOf(ctx).business.setConfig(input.key, input.value);
      ctx.deps.logger.info({ key: input.key, by: ctx.user.id }, 'business setting changed');
      return settings;
    }),
  ),
});
