import { z } from 'zod';
import { utcDateSchema } from '../../../shared/usage';
import { utcDateOf } from '../../usage/UsageLedger';
import { adminProcedure, authedProcedure, router } from '../trpc';
import { domainCall, domainOf } from './domainErrors';

/** A day range, defaulting to today (UTC). */
const rangeInputSchema = z
  .object({ from: utcDateSchema.optional(), to: utcDateSchema.optional() })
  .optional()
  .transform((r) => {
    const today = utcDateOf(Date.now());
    return { from: r?.from ?? r?.to ?? today, to: r?.to ?? today };
  })
  .refine((r) => r.from <= r.to, { message: '`from` must not be after `to`', path: ['to'] });

export const usageRouter = router({
  /** The caller's own usage per day. */
  mine: authedProcedure.input(rangeInputSchema).query(({ ctx, input }) => domainCall(() => domainOf(ctx).ledger.mine(ctx.user.id, input))),

  /** Every user's usage (admin). */
  byUser: adminProcedure.input(rangeInputSchema).query(({ ctx, input }) => domainCall(() => domainOf(ctx).ledger.byUser(input))),
});
