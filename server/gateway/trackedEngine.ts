import type { StreamEvent } from '../../shared';
import type { GatewayMetrics } from '../observability/metrics';
import { ShuttingDownError, type ShutdownCoordinator } from '../ops/shutdown';
import type { ChatEngine, ChatEngineRequest, EventSink } from '../streams/ChatEngine';

export interface TrackedEngineOptions {
  inner: ChatEngine;
  coordinator: ShutdownCoordinator;
  metrics: GatewayMetrics;
  /**
   * REQUEST_TIMEOUT_MS: an answer with no event for this long is cut (a stalled upstream would
   * otherwise hold the request until the HTTP client's own 60 s timeouts). Default: none.
   */
  idleTimeoutMs?: number;
  now?: () => number;
}

/**
 * Every answer the gateway produces passes here (tRPC streams, chat.complete, /v1), so this is
 * where shutdown and the per-request metrics hook in:
 * - each answer is tracked by the shutdown coordinator; one cut by shutdown ends with an `error`
 *   event `shutting_down` (clients retry elsewhere) instead of a bare `done: aborted`;
 * - requests by provider/model/status, time to first delta, tokens and cost. Labels come from
 *   the `start` event (catalog provider and upstream model), never from user input or keys.
 */
/**
 * The abort reason of a stalled answer, recognised by identity. One shared instance: an Error
 * per request captured a stack trace each time (issue #8's profile); nothing mutates it.
 */
const stalled = new Error('upstream stalled');

export function createTrackedEngine(options: TrackedEngineOptions): ChatEngine {
  const { inner, coordinator, metrics } = options;
  const now = options.now ?? (() => performance.now());
  return {
    async run(req: ChatEngineRequest, emit: EventSink): Promise<void> {
      // The caller's own controller when it gave one (see ChatEngineRequest.controller).
      const own = req.controller?.signal === req.signal ? req.controller : undefined;
      const local = own ?? new AbortController();
      const onCallerAbort = () => local.abort(req.signal.reason);
      if (!own) {
        if (req.signal.aborted) local.abort(req.signal.reason);
        else req.signal.addEventListener('abort', onCallerAbort, { once: true });
      }
      const untrack = coordinator.track(local);
      let idle: ReturnType<typeof setTimeout> | undefined;
      let settled = false;
      // Re-armed on every event: refresh() reschedules the one timer in place (a new timer per
      // event was 20,000 timers/s at 1,000 streams, issue #8).
      const armIdle = () => {
        if (options.idleTimeoutMs === undefined || settled) return;
        if (idle) idle.refresh();
        else idle = setTimeout(() => local.abort(stalled), options.idleTimeoutMs);
      };
      armIdle();
      const startedAt = now();
      let provider = 'none';
      let model = 'none';
      let status = 'aborted';
      let firstDelta = true;
      // Done before a terminal event is handed out: the answer must not stay counted as open
      // while its reader handles the end.
      const settle = () => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        if (!own) req.signal.removeEventListener('abort', onCallerAbort);
        untrack();
        metrics.requests.inc({ provider, model, status });
      };
      try {
        await inner.run(own ? req : { ...req, signal: local.signal, controller: local }, (event) => {
          // Cut by shutdown or a stall: what the inner engine says about it (done: aborted) is
          // replaced by one error below.
          if (local.signal.aborted && (ShuttingDownError.isInstance(local.signal.reason) || local.signal.reason === stalled)) return;
          armIdle();
          if (event.type === 'start') {
            provider = event.provider;
            model = event.model;
          } else if (event.type === 'delta') {
            if (firstDelta) {
              firstDelta = false;
              if (provider !== 'none') metrics.timeToFirstToken.observe({ provider }, (now() - startedAt) / 1000);
            }
          } else if (event.type === 'usage') {
            metrics.tokens.inc({ provider, model, direction: 'input' }, event.usage.inputTokens);
            metrics.tokens.inc({ provider, model, direction: 'output' }, event.usage.outputTokens);
            const usd = event.cost?.actualUsd ?? event.cost?.estimatedUsd;
            if (usd) metrics.costUsd.inc({ provider, model }, usd);
          } else if (event.type === 'done') {
            status = event.finishReason === 'aborted' ? 'aborted' : 'ok';
            settle();
          } else if (event.type === 'error') {
            status = event.code;
            settle();
          }
          return emit(event);
        });
        if (local.signal.reason === stalled && !settled) {
          const code = firstDelta ? 'upstream_error' : 'stream_interrupted';
          status = code;
          settle();
          await emit({ type: 'error', code, message: `${provider === 'none' ? 'the provider' : provider} sent nothing for ${options.idleTimeoutMs} ms` });
        } else if (ShuttingDownError.isInstance(local.signal.reason)) {
          status = 'shutting_down';
          settle();
          await emit({ type: 'error', code: 'shutting_down', message: new ShuttingDownError().message });
        }
      } finally {
        settle();
      }
    },
  };
}
