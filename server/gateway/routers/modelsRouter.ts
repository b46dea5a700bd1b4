import { modelsListOutputSchema, type ModelInfo } from '../../../shared/api';
import { setModelActiveInputSchema, upsertModelInputSchema } from '../../../shared/business';
import { adminProcedure, authedProcedure, router } from '../trpc';
import { domainCall, domainOf } from './domainErrors';

export const modelsRouter = router({
  /** Active models with display names and prices (USD per 1M tokens). */
  list: authedProcedure.output(modelsListOutputSchema).query(async ({ ctx }): Promise<ModelInfo[]> => {
    const models = await ctx.deps.catalog.list();
    return models.map((m) => ({ id: m.id, provider: m.provider, displayName: m.displayName, inputPrice: m.inputPrice, outputPrice: m.outputPrice, capabilities: m.capabilities, kind: m.kind ?? 'chat' }));
  }),

  /** Adds or replaces a model (admin). Fallbacks must name existing models. */
  upsert: adminProcedure.input(upsertModelInputSchema).mutation(({ ctx, input }) => domainCall(() => domainOf(ctx).business.upsertModel(input))),

  /** Takes a model out of the list or puts it back (admin). */
  setActive: adminProcedure
    .input(setModelActiveInputSchema)
    .mutation(({ ctx, input }) => domainCall(() => domainOf(ctx).business.setModelActive(input.id, input.is_active))),
});
