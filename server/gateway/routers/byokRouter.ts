import { z } from 'zod';
import { addByokKeyInputSchema, byokKeyRefSchema, byokSettingsSchema, byokTestResultSchema } from '../../../shared/byok';
import { authedProcedure, router } from '../trpc';
import { domainCall, domainOf } from './domainErrors';

/**
 * A user's own provider keys. Every procedure works on the caller's keys only: another user's
 * key id is NOT_FOUND, exactly like an id that never existed. A key is never returned after add.
 */
export const byokRouter = router({
  add: authedProcedure.input(addByokKeyInputSchema).mutation(({ ctx, input }) => domainCall(() => domainOf(ctx).vault.add(ctx.user.id, input))),

  list: authedProcedure.query(({ ctx }) => domainCall(() => domainOf(ctx).vault.list(ctx.user.id))),

  remove: authedProcedure.input(byokKeyRefSchema).mutation(async ({ ctx, input }) => {
    await domainCall(() => domainOf(ctx).vault.remove(ctx.user.id, input.id));
    return { ok: true as const };
  }),

  test: authedProcedure
    .input(byokKeyRefSchema)
    .output(z.object({ result: byokTestResultSchema }))
    .mutation(async ({ ctx, input }) => {
      const domain = domainOf(ctx);
      const result = await domainCall(() => domain.vault.test(ctx.user.id, input.id, domain.testKey));
      return { result };
    }),

  settings: authedProcedure.output(byokSettingsSchema).query(({ ctx }) => domainCall(() => domainOf(ctx).vault.getSettings(ctx.user.id))),

  setSettings: authedProcedure
    .input(byokSettingsSchema)
    .output(byokSettingsSchema)
    .mutation(({ ctx, input }) => domainCall(() => domainOf(ctx).vault.setSettings(ctx.user.id, input))),
});
