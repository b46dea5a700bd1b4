import type { FairnessState } from '../types';

/** A user with no weight in the store counts once (issue 22). */
export const FAIR_WEIGHT_DEFAULT = 1;

/**
 * The admin view of a pool's fair hash and wait queue as pick.lua keeps them (layout at the top
 * of lua/fair.lua), read without writing: `expired` are the user-log entries that left the
 * window but that no pick has trimmed yet, taken off their users' counts here.
 */
export function fairnessFromHash(fields: Record<string, string>, expired: readonly string[], waiters: readonly string[], now: number, windowMs: number): FairnessState {
  const served = new Map<string, number>();
  const weights = new Map<string, number>();
  const asked = new Map<string, number>();
  for (const [field, value] of Object.entries(fields)) {
    const kind = field.slice(0, 2);
    const userId = field.slice(2);
    if (kind === 'n:') served.set(userId, Number(value));
    else if (kind === 'w:') weights.set(userId, Number(value));
    else if (kind === 'a:') asked.set(userId, Number(value));
  }
  for (const entry of expired) {
    const userId = entry.slice(entry.indexOf('|') + 1);
    served.set(userId, (served.get(userId) ?? 0) - 1);
  }
  const users: FairnessState['users'] = [];
  for (const userId of new Set([...served.keys(), ...weights.keys()])) {
    const requests = Math.max(0, served.get(userId) ?? 0);
    if (requests > 0 || (asked.get(userId) ?? 0) > now - windowMs) users.push({ userId, weight: weights.get(userId) ?? FAIR_WEIGHT_DEFAULT, requests });
  }
  let length = 0;
  let oldestJoinedAt: number | null = null;
  for (const member of waiters) {
    const parts = /^\d+\|(\d+)\|(\d+)\|/.exec(member);
    if (!parts || Number(parts[2]) <= now) continue; // past its deadline: the next pick drops it
    length += 1;
    const joined = Number(parts[1]);
    if (oldestJoinedAt === null || joined < oldestJoinedAt) oldestJoinedAt = joined;
  }
  return { users, queue: { length, oldestJoinedAt }, now };
}
