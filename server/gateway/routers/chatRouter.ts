import { tracked, TRPCError } from '@trpc/server';
import type { StreamEvent } from '../../../shared';
import {
  chatCompleteInputSchema,
  chatCompleteOutputSchema,
  chatStartInputSchema,
  chatStartOutputSchema,
  chatStreamInputSchema,
  CHAT_START_EVENTS_MAX,
  type ChatCompleteOutput,
} from '../../../shared/api';
import { StreamLimitError } from '../../streams/ChatStreams';
import { collectAnswer } from '../collectAnswer';
import { trpcErrorOf } from '../gatewayFailure';
import { authedProcedure, router } from '../trpc';

export const chatRouter = router({
  /**
   * Starts the upstream call and answers once it produced its first event, so "every key busy"
   * or "unknown model" is this mutation's error (TOO_MANY_REQUESTS with retryAfterMs, NOT_FOUND)
   * rather than a stream of one error event. The answer carries the events held by then (the
   * first text, usually), so the client shows them without waiting for chat.stream's round trip
   * (issue #8: time to first token). Messages travel in the POST body, never in a URL.
   */
  start: authedProcedure
    .input(chatStartInputSchema)
    .output(chatStartOutputSchema)
    .mutation(async ({ ctx, input, signal }) => {
      const started = await ctx.deps.streams.start({
        chat: input,
        userId: ctx.user.id,
        requestId: ctx.requestId,
        maxEvents: CHAT_START_EVENTS_MAX,
        ...(signal ? { signal } : {}),
      });
      if (started.first?.type === 'error') throw trpcErrorOf(started.first);
      return { streamId: started.streamId, events: started.events };
    }),

  /**
   * The events of a started stream, each `tracked(id, event)`. A reconnect carries the last id
   * (httpSubscriptionLink puts it into the input) and resumes with the next event from the
   * buffer: the upstream call runs once. Upstream failures are `error` events followed by the
   * end of the subscription, never thrown: tRPC's SSE client re-runs a subscription that fails
   * with a 5xx-class code, which would start nothing new here but would look like a hang.
   */
  stream: authedProcedure.input(chatStreamInputSchema).subscription(async function* ({ ctx, input, signal }) {
    const read = await ctx.deps.streams
      .open({ streamId: input.streamId, userId: ctx.user.id, lastEventId: input.lastEventId ?? null })
      .catch((error: unknown) => {
        // Over the per-user subscription cap (issue 24.7): a 4xx, so the SSE client does not re-run it.
        if (error instanceof StreamLimitError) throw trpcErrorOf({ type: 'error', code: 'rate_limited', message: error.message });
        throw error;
      });
    // Someone else's stream and an unknown one look the same: ids are not a way to probe.
    if (!read) throw new TRPCError({ code: 'NOT_FOUND', message: 'no such stream' });
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const { id, event } of read(ac.signal)) yield tracked(id, event as StreamEvent);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      ac.abort();
    }
  }),

  /** The same answer, whole. Fails with the gateway's error codes mapped to tRPC's. */
  complete: authedProcedure
    .input(chatCompleteInputSchema)
    .output(chatCompleteOutputSchema)
    .mutation(async ({ ctx, input, signal }): Promise<ChatCompleteOutput> => {
      const answer = await collectAnswer((emit) =>
        ctx.deps.engine.run({ chat: input, userId: ctx.user.id, signal: signal ?? new AbortController().signal, requestId: ctx.requestId, delivery: 'whole' }, emit),
      );
      if (!answer.ok) throw trpcErrorOf(answer.error);
      return answer.value;
    }),
});
