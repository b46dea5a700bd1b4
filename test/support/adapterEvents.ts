import type { AdapterContext, AdapterEvent, ProviderAdapter, UpstreamRequest } from '../../server/providers/types';
import { pullFrom } from '../../server/streams/pullFrom';

/** An adapter's answer as an async iterable, so tests read it with for-await; stopping early aborts the call. */
export function adapterEvents(adapter: ProviderAdapter, req: UpstreamRequest, ctx: AdapterContext): AsyncGenerator<AdapterEvent> {
  return pullFrom<AdapterEvent>((emit, signal) => adapter.run(req, { ...ctx, signal }, emit), ctx.signal);
}
