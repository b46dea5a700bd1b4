import { z } from 'zod';
import { usagePageSchema, usageRangeSchema, utcDateSchema } from '../../../shared/usage';
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

/**
 * A range as above, and a page of users (issue 23): `limit` users after `cursor` (the previous
 * page's nextCursor). A bad cursor or limit is refused here: 400.
 */
const pagedRangeInputSchema = z
  .object({ from: utcDateSchema.optional(), to: utcDateSchema.optional(), ...usagePageSchema.shape })
  .optional()
  .transform((r) => {
    const today = utcDateOf(Date.now());
    const page = { ...(r?.limit !== undefined ? { limit: r.limit } : {}), ...(r?.cursor !== undefined ? { cursor: r.cursor } : {}) };
    return { range: { from: r?.from ?? r?.to ?? today, to: r?.to ?? today }, page };
  })
  .pipe(z.object({ range: usageRangeSchema, page: usagePageSchema }));

export const usageRouter = router({
  /** The caller's own usage per day. */
  mine: authedProcedure.input(rangeInputSchema).query(({ ctx, input }) => domainCall(() => domainOf(ctx).ledger.mine(ctx.user.id, input))),

  /** Every user's usage (admin), highest cost first; with `limit` (and `cursor`), one page of it. */
  byUser: adminProcedure.input(pagedRangeInputSchema).query(({ ctx, input }) => domainCall(() => domainOf(ctx).ledger.byUser(input.range, input.page))),

  /** byUser a page at a time, with the next page's cursor (null on the last page). */
  byUserPage: adminProcedure.input(pagedRangeInputSchema).query(({ ctx, input }) => domainCall(() => domainOf(ctx).ledger.byUserPage(input.range, input.page))),
});
