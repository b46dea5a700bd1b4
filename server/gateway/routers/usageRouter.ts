import { z } from 'zod';
import { usageRangeSchema, utcDateSchema } from '../../../shared/usage';
import { utcDateOf } from '../../usage/UsageLedger';
import { adminProcedure, authedProcedure, router } from '../trpc';
import { domainCall, domainOf } from './domainErrors';

/** A day range, defaulting to today (UTC), checked (real dates, order, length) before the resolver runs. */
const rangeInputSchema = z
  .object({ from: utcDateSchema.optional(), to: utcDateSchema.optional() })
  .optional()
  .transform((r) => {
    const today = utcDateOf(Date.now());
    return { from: r?.from ?? r?.to ?? today, to: r?.to ?? today };
  })
  .pipe(usageRangeSchema);

export const usageRouter = router({
  /** The caller's own usage per day. */
  mine: authedProcedure.input(rangeInputSchema).query(({ ctx, input }) => domainCall(() => domainOf(ctx).ledger.mine(ctx.user.id, input))),

  /** Every user's usage (admin). */
  byUser: adminProcedure.input(rangeInputSchema).query(({ ctx, input }) => domainCall(() => domainOf(ctx).ledger.byUser(input))),
});
