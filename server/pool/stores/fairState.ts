/**
 * The in-process store's fair share and wait queue (issue 22): the same state and arithmetic as
 * lua/fair.lua, so the contract suite holds for both stores.
 */

/** One named user of a pool: requests served in the window, weight, last ask while scarce. */
export interface FairUser {
  served: number;
  weight: number;
  /** 0 = never. */
  askedAt: number;
}

export interface Waiter {
  member: string;
  score: number;
  joinedAt: number;
  deadline: number;
  user: string;
}

export interface FairPoolState {
  users: Map<string, FairUser>;
  /** The log of requests served to named users, oldest first (times, and whose). */
  logTimes: number[];
  logUsers: string[];
  logHead: number;
  /** Sorted as a Redis zset: by score, then member. */
  queue: Waiter[];
  /** Like meta "q": set on join, cleared when a pick finds the queue empty. */
  queued: boolean;
  /** Like meta "fs": the last refusal for lack of capacity. */
  scarceAt: number;
  seq: number;
}

export function newFairPoolState(): FairPoolState {
  return { users: new Map(), logTimes: [], logUsers: [], logHead: 0, queue: [], queued: false, scarceAt: 0, seq: 0 };
}

function userOf(state: FairPoolState, name: string): FairUser {
  let user = state.users.get(name);
  if (!user) state.users.set(name, (user = { served: 0, weight: 1, askedAt: 0 }));
  return user;
}

/** Entries that left the window come off their users' counts (see fairTrim in lua/fair.lua). */
function trimLog(state: FairPoolState, cutoff: number): void {
  while (state.logHead < state.logTimes.length && state.logTimes[state.logHead]! <= cutoff) {
    const user = state.users.get(state.logUsers[state.logHead]!);
    if (user) user.served = Math.max(0, user.served - 1);
    state.logHead++;
  }
  if (state.logHead > 1024 && state.logHead * 2 > state.logTimes.length) {
    state.logTimes.splice(0, state.logHead);
    state.logUsers.splice(0, state.logHead);
    state.logHead = 0;
  }
}

export function useOf(state: FairPoolState, name: string, now: number, windowMs: number): number {
  trimLog(state, now - windowMs);
  return state.users.get(name)?.served ?? 0;
}

/** Users served in the window or asking within it, with their use and weight; the rest are forgotten. */
export function activeUsers(state: FairPoolState, now: number, windowMs: number): { use: Map<string, number>; active: Map<string, number> } {
  const cutoff = now - windowMs;
  trimLog(state, cutoff);
  const use = new Map<string, number>();
  const active = new Map<string, number>();
  for (const [name, user] of state.users) {
    if (user.served > 0) use.set(name, user.served);
    if (user.served > 0 || user.askedAt > cutoff) active.set(name, user.weight);
    else state.users.delete(name);
  }
  return { use, active };
}

export function noteAsked(state: FairPoolState, name: string, weight: number, now: number): void {
  const user = userOf(state, name);
  user.weight = weight;
  user.askedAt = now;
}

/** One request served to `name`; the first of the user in the window also sets the weight. */
export function countServed(state: FairPoolState, name: string, weight: number, now: number, windowMs: number): void {
  trimLog(state, now - windowMs);
  const user = userOf(state, name);
  state.logTimes.push(now);
  state.logUsers.push(name);
  user.served += 1;
  if (user.served === 1) user.weight = weight;
}

/** See fairAllows in lua/fair.lua: in integers, so the order of the sums changes nothing. */
export function fairAllows(use: Map<string, number>, active: Map<string, number>, name: string, capacity: number, free: number): boolean {
  let total = 0;
  for (const w of active.values()) total += w;
  const mine = use.get(name) ?? 0;
  if (mine * total < capacity * active.get(name)!) return true;
  let claim = 0;
  for (const [other, w] of active) {
    if (other === name) continue;
    const left = capacity * w - (use.get(other) ?? 0) * total;
    if (left > 0) claim += left;
  }
  return free * total > claim;
}

/** Waiters past their deadline leave from the head; the queue's length after (see queueTrim). */
export function trimQueue(state: FairPoolState, now: number): number {
  for (let i = 0; i < 32; i++) {
    const head = state.queue[0];
    if (!head) {
      state.queued = false;
      return 0;
    }
    if (head.deadline > now) break;
    state.queue.shift();
  }
  return state.queue.length;
}

export function joinQueue(state: FairPoolState, now: number, waitMs: number, name: string, weight: number, use: number | undefined): Waiter {
  state.seq += 1;
  let mine = 0;
  if (name !== '') for (const w of state.queue) if (w.user === name) mine += 1;
  const waiter: Waiter = {
    member: `${String(state.seq).padStart(15, '0')}|${now}|${now + waitMs}|${name}`,
    score: ((use ?? 0) + mine) / weight,
    joinedAt: now,
    deadline: now + waitMs,
    user: name,
  };
  let at = state.queue.length;
  while (at > 0 && compareWaiters(state.queue[at - 1]!, waiter) > 0) at--;
  state.queue.splice(at, 0, waiter);
  state.queued = true;
  return waiter;
}

function compareWaiters(a: Waiter, b: Waiter): number {
  return a.score - b.score || (a.member < b.member ? -1 : a.member > b.member ? 1 : 0);
}

export function leaveQueue(state: FairPoolState, member: string): void {
  const at = state.queue.findIndex((w) => w.member === member);
  if (at >= 0) state.queue.splice(at, 1);
}
