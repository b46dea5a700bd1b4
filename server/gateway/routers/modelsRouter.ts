import { modelsListOutputSchema, type ModelInfo } from '../../../shared/api';
import { authedProcedure, router } from '../trpc';

export const modelsRouter = router({
  /** Active models with display names and prices (USD per 1M tokens). */
  list: authedProcedure.output(modelsListOutputSchema).query(async ({ ctx }): Promise<ModelInfo[]> => {
    const models = await ctx.deps.catalog.list();
    return models.map((m) => ({ id: m.id, provider: m.provider, displayName: m.displayName, inputPrice: m.inputPrice, outputPrice: m.outputPrice }));
  }),
});
