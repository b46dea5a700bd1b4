import { setTimeout as sleep } from 'node:timers/promises';
import { TRPCError } from '@trpc/server';
import type { PoolStatus } from '../../../shared';
import { poolSetKeyEnabledInputSchema, poolSetKeyEnabledOutputSchema, poolStatusOutputSchema } from '../../../shared/api';
import { adminProcedure, router } from '../trpc';

export const poolRouter = router({
  status: adminProcedure.output(poolStatusOutputSchema).query(({ ctx }) => ctx.deps.pool.status()),

  /**
   * The pool status once on subscribe, then whenever it changes, at most once per interval
   * (1 s). The pool has no change feed (its state may live in Redis, moved by other
   * instances), so this polls; `at` alone changing is not a change.
   */
  watch: adminProcedure.subscription(async function* ({ ctx, signal }): AsyncGenerator<PoolStatus> {
    const intervalMs = ctx.deps.poolWatchIntervalMs ?? 1_000;
    let last = '';
    while (!signal?.aborted) {
      const status = await ctx.deps.pool.status();
      const fingerprint = JSON.stringify({ ...status, at: 0 });
      if (fingerprint !== last) {
        last = fingerprint;
        yield status;
      }
      try {
        await sleep(intervalMs, undefined, signal ? { signal } : {});
      } catch {
        return; // aborted
      }
    }
  }),

  /** Takes a key out of rotation or puts it back (env pools are named after their provider). */
  setKeyEnabled: adminProcedure
    .input(poolSetKeyEnabledInputSchema)
    .output(poolSetKeyEnabledOutputSchema)
    .mutation(async ({ ctx, input }) => {
      const found = await ctx.deps.pool.setKeyEnabled(input.provider, input.fingerprint, input.enabled);
      if (!found) throw new TRPCError({ code: 'NOT_FOUND', message: `no ${input.provider} key with that fingerprint` });
      ctx.deps.logger.info({ provider: input.provider, fingerprint: input.fingerprint, enabled: input.enabled, by: ctx.user.id }, 'key switched by admin');
      return { ok: true as const };
    }),

  /**
   * Re-reads ENV_FILE and applies the difference: new keys join, removed keys leave (in-flight
   * requests on them finish), unchanged keys keep their counters and cooldowns. An invalid file
   * changes nothing; the report names variables, never values. SIGHUP does the same.
   */
  reload: adminProcedure.mutation(async ({ ctx }) => {
    if (!ctx.deps.reload) throw new TRPCError({ code: 'NOT_IMPLEMENTED', message: 'this gateway cannot reload' });
    const report = await ctx.deps.reload();
    ctx.deps.logger.info({ ok: report.ok, by: ctx.user.id }, 'pool reload');
    return report;
  }),
});
