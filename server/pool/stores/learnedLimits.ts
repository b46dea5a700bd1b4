import type { LearnedLimits, LearnedWindow, LimitObservation, ObservedWindow } from '../types';

/**
 * How an observation of the provider's windows updates what an account has learned (issue 22).
 * lua/common.lua's mergeLearned does exactly the same on the Redis side.
 *
 * - The limit is kept until an answer states another: a tier changes rarely, and an answer
 *   that states only what is left (Groq's per-day requests) must not forget it.
 * - `remaining` is the one of the most recently SENT request (observedAt), whatever order the
 *   answers come back in: a long stream that ends last says the least about now.
 * - Without a reset time, what is left holds for one window from the observation.
 */
export function mergeObservation(previous: LearnedLimits | null, seen: LimitObservation, now: number, windowMs: number): LearnedLimits {
  const observedAt = now - Math.max(0, seen.sinceMs);
  return {
    requests: mergeWindow(previous?.requests ?? null, seen.requests, observedAt, now, windowMs),
    tokens: mergeWindow(previous?.tokens ?? null, seen.tokens, observedAt, now, windowMs),
  };
}

function mergeWindow(previous: LearnedWindow | null, seen: ObservedWindow | undefined, observedAt: number, now: number, windowMs: number): LearnedWindow | null {
  if (!seen) return previous;
  if (previous && observedAt < previous.observedAt) return previous;
  return {
    limit: seen.limit ?? previous?.limit ?? null,
    remaining: seen.remaining ?? null,
    observedAt,
    resetAt: seen.resetInMs !== undefined ? now + seen.resetInMs : observedAt + windowMs,
  };
}
