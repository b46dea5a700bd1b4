import { TRPCError } from '@trpc/server';
import { embeddingsCreateInputSchema, embeddingsCreateOutputSchema, type EmbeddingsCreateOutput } from '../../../shared/embeddings';
import { embedTexts } from '../embeddings/embedTexts';
import { trpcErrorOf } from '../gatewayFailure';
import { authedProcedure, router } from '../trpc';

export const embeddingsRouter = router({
  /**
   * Issue 21: one vector per text from an embedding model of the catalog, through the key pools,
   * the caller's limits and budget, and the usage ledger (as /v1/embeddings). Failures are the
   * chat's codes: TOO_MANY_REQUESTS with retryAfterMs, BAD_REQUEST naming the field, NOT_FOUND.
   */
  create: authedProcedure
    .input(embeddingsCreateInputSchema)
    .output(embeddingsCreateOutputSchema)
    .mutation(async ({ ctx, input, signal }): Promise<EmbeddingsCreateOutput> => {
      if (!ctx.deps.calls) throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'embeddings are not served by this gateway' });
      const result = await embedTexts(ctx.deps.calls, {
        model: input.model,
        inputs: typeof input.input === 'string' ? [input.input] : input.input,
        ...(input.dimensions !== undefined ? { dimensions: input.dimensions } : {}),
        ...(input.maxWaitMs !== undefined ? { maxWaitMs: input.maxWaitMs } : {}),
        userId: ctx.user.id,
        signal: signal ?? new AbortController().signal,
        requestId: ctx.requestId,
      });
      if (!result.ok) throw trpcErrorOf({ type: 'error', code: result.code, message: result.message, ...(result.retryAfterMs !== undefined ? { retryAfterMs: result.retryAfterMs } : {}) });
      return { model: result.model.id, embeddings: result.vectors, usage: result.usage, costUsd: result.costUsd };
    }),
});
