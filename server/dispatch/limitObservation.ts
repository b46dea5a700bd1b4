import type { StatedLimits, StatedWindow } from '../providers/http/rateLimitHeaders';
import type { LimitObservation, ObservedWindow } from '../pool/types';

/**
 * What an answer stated (read when its headers came, on the dispatcher's clock) as the pool
 * takes it at report time (issue 22): relative to now, so the store puts it on its own clock.
 * A stream may end long after its headers: the reset is counted down by the time since.
 */
export function limitObservationOf(stated: StatedLimits, sentAt: number, now: number): LimitObservation {
  const elapsed = Math.max(0, now - stated.at);
  const window = (w: StatedWindow): ObservedWindow => ({
    ...(w.limit !== undefined ? { limit: w.limit } : {}),
    ...(w.remaining !== undefined ? { remaining: w.remaining } : {}),
    ...(w.resetMs !== undefined ? { resetInMs: Math.max(0, w.resetMs - elapsed) } : {}),
  });
  return {
    sinceMs: Math.max(0, now - sentAt),
    ...(stated.requests ? { requests: window(stated.requests) } : {}),
    ...(stated.tokens ? { tokens: window(stated.tokens) } : {}),
  };
}
