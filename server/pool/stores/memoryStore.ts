import type { KeyReason } from '../../../shared';
import { effectiveLimit, systemClock, type Clock, type CountingPoolStore, type FairnessState, type KeyState, type LearnedLimits, type Outcome, type PickAsk, type PickResult, type PoolDefinition, type WindowEntry } from '../types';
import { ApproxWindow } from './approxWindow';
import { activeUsers, countServed, fairAllows, joinQueue, leaveQueue, newFairPoolState, noteAsked, trimQueue, useOf, type FairPoolState, type Waiter } from './fairState';
import { mergeObservation } from './learnedLimits';
import { WindowLog } from './windowLog';

/**
 * The in-process PoolStore, used when REDIS_URL is unset (one gateway instance).
 * Same semantics as the Redis store; the contract suite in test/pool runs against both.
 */
export interface MemoryStoreOptions {
  clock?: Clock;
  /** A pool untouched this long is forgotten, like the Redis store's key expiry. Default 7 days. */
  stateTtlMs?: number;
}

type CoolReason = Extract<KeyReason, 'rate_limited' | 'quota_exhausted'>;

interface AccountState {
  /** Exact logs, used while the pool's rpm / tpm is limited. */
  requests: WindowLog;
  tokens: WindowLog;
  /** Estimates, used for an unlimited rpm / tpm (see approxWindow.ts). */
  approx: ApproxWindow;
  coolUntil: number;
  coolReason: CoolReason | null;
  /**
   * What the provider stated (issue 22). Once it states a window, that window's counts are
   * exact logs whatever the pool's configuration says, so its limit can be enforced.
   */
  learned: LearnedLimits | null;
}

interface KeyRecord {
  disabled: KeyReason | null;
}

interface PoolState {
  cursor: number;
  accounts: Map<string, AccountState>;
  keys: Map<string, KeyRecord>;
  lastTouched: number;
  /** False once swept: cached views of this state must be rebuilt. */
  alive: boolean;
  /** Fair share and the wait queue (issue 22). */
  fair: FairPoolState;
}

/** A pool definition resolved to its state objects, cached per definition object. */
interface View {
  state: PoolState;
  keys: KeyRecord[];
  /** Account state of each key. */
  accountOfKey: AccountState[];
  indexOf: Map<string, number>;
  /** Preallocated success results: a pick allocates nothing but its promise. */
  granted: PickResult[];
}

const NO_KEYS: PickResult = Object.freeze({ ok: false, reason: 'no_keys', retryAfterMs: null });
const SWEEP_EVERY_OPS = 4096;
const SWEEP_INTERVAL_MS = 60_000;

export function createMemoryStore(options: MemoryStoreOptions = {}): CountingPoolStore {
  const clock = options.clock ?? systemClock;
  const stateTtlMs = options.stateTtlMs ?? 7 * 24 * 3_600_000;
  const pools = new Map<string, PoolState>();
  const views = new WeakMap<PoolDefinition, View>();
  let opsSinceSweep = 0;
  let lastSweep = clock();

  function poolState(id: string, now: number): PoolState {
    let state = pools.get(id);
    if (!state) {
      state = { cursor: 0, accounts: new Map(), keys: new Map(), lastTouched: now, alive: true, fair: newFairPoolState() };
      pools.set(id, state);
    }
    return state;
  }

  function view(pool: PoolDefinition, now: number): View {
    const cached = views.get(pool);
    if (cached && cached.state.alive) {
      cached.state.lastTouched = now;
      return cached;
    }
    const state = poolState(pool.id, now);
    state.lastTouched = now;
    const keys: KeyRecord[] = [];
    const accountOfKey: AccountState[] = [];
    const indexOf = new Map<string, number>();
    const granted: PickResult[] = [];
    pool.keys.forEach((key, i) => {
      let record = state.keys.get(key.fingerprint);
      if (!record) state.keys.set(key.fingerprint, (record = { disabled: null }));
      let account = state.accounts.get(key.account);
      if (!account) {
        account = { requests: new WindowLog(false), tokens: new WindowLog(true), approx: new ApproxWindow(), coolUntil: 0, coolReason: null, learned: null };
        state.accounts.set(key.account, account);
      }
      keys.push(record);
      accountOfKey.push(account);
      if (!indexOf.has(key.fingerprint)) indexOf.set(key.fingerprint, i);
      granted.push(Object.freeze({ ok: true, fingerprint: key.fingerprint }));
    });
    const built: View = { state, keys, accountOfKey, indexOf, granted };
    views.set(pool, built);
    return built;
  }

  function maybeSweep(now: number): void {
    if (++opsSinceSweep < SWEEP_EVERY_OPS) return;
    opsSinceSweep = 0;
    if (now - lastSweep < SWEEP_INTERVAL_MS) return;
    lastSweep = now;
    for (const [id, state] of pools) {
      if (now - state.lastTouched <= stateTtlMs) continue;
      state.alive = false;
      pools.delete(id);
    }
  }

  function usable(account: AccountState, pool: PoolDefinition, now: number, cutoff: number): boolean {
    if (account.coolUntil > now) return false;
    if (account.learned !== null) return usableLearned(account, account.learned, pool, now, cutoff);
    if (pool.rpm > 0) {
      account.requests.trim(cutoff);
      if (account.requests.size >= pool.rpm) return false;
    }
    if (pool.tpm > 0) {
      account.tokens.trim(cutoff);
      if (account.tokens.sum >= pool.tpm) return false;
    }
    return true;
  }

  /**
   * Issue 22: within the limit in force (configured, or corrected by the provider's), and while
   * the provider's `remaining` holds (until its reset), fewer picks since that observation than
   * it said were left. Picks are counted in the shared window, so N instances never overrun it.
   */
  function usableLearned(account: AccountState, learned: LearnedLimits, pool: PoolDefinition, now: number, cutoff: number): boolean {
    const r = learned.requests;
    const rpm = effectiveLimit(pool.rpm, r?.limit);
    if (rpm > 0 || r !== null) account.requests.trim(cutoff);
    if (rpm > 0 && account.requests.size >= rpm) return false;
    if (r !== null && r.remaining !== null && now < r.resetAt && account.requests.countAfter(r.observedAt) >= r.remaining) return false;
    const t = learned.tokens;
    const tpm = effectiveLimit(pool.tpm, t?.limit);
    if (tpm > 0 || t !== null) account.tokens.trim(cutoff);
    if (tpm > 0 && account.tokens.sum >= tpm) return false;
    if (t !== null && t.remaining !== null && now < t.resetAt && account.tokens.sumAfter(t.observedAt) >= t.remaining) return false;
    return true;
  }

  /** Whether an account of the pool was stated a requests limit (pick.lua reads the same from its meta hash). */
  function anyRequestsLimit(v: View): boolean {
    return v.accountOfKey.some((account) => account.learned?.requests?.limit != null);
  }

  /** The requests limit in force for the account: configured, or corrected / stated by its provider. */
  function rpmOf(account: AccountState, pool: PoolDefinition): number {
    return account.learned === null ? pool.rpm : effectiveLimit(pool.rpm, account.learned.requests?.limit);
  }

  /** Whether the account's requests are an exact log: a configured or a learned window. */
  function exactRequests(account: AccountState, pool: PoolDefinition): boolean {
    return pool.rpm > 0 || (account.learned !== null && account.learned.requests !== null);
  }

  function exactTokens(account: AccountState, pool: PoolDefinition): boolean {
    return pool.tpm > 0 || (account.learned !== null && account.learned.tokens !== null);
  }

  function requestsOf(account: AccountState, pool: PoolDefinition, now: number): number {
    if (!exactRequests(account, pool)) return account.approx.requestsAt(now, pool.windowMs);
    account.requests.trim(now - pool.windowMs);
    return account.requests.size;
  }

  function tokensOf(account: AccountState, pool: PoolDefinition, now: number): number {
    if (!exactTokens(account, pool)) return account.approx.tokensAt(now, pool.windowMs);
    account.tokens.trim(now - pool.windowMs);
    return account.tokens.sum;
  }

  /** How long until the account could serve again (it is known not usable now). */
  function waitOf(account: AccountState, pool: PoolDefinition, now: number): number {
    let wait = account.coolUntil > now ? account.coolUntil - now : 0;
    const learned = account.learned;
    const rpm = effectiveLimit(pool.rpm, learned?.requests?.limit);
    const tpm = effectiveLimit(pool.tpm, learned?.tokens?.limit);
    if (rpm > 0) wait = Math.max(wait, account.requests.msUntilBelow(rpm, now, pool.windowMs));
    if (tpm > 0) wait = Math.max(wait, account.tokens.msUntilBelow(tpm, now, pool.windowMs));
    const r = learned?.requests;
    if (r && r.remaining !== null && now < r.resetAt && account.requests.countAfter(r.observedAt) >= r.remaining) wait = Math.max(wait, r.resetAt - now);
    const t = learned?.tokens;
    if (t && t.remaining !== null && now < t.resetAt && account.tokens.sumAfter(t.observedAt) >= t.remaining) wait = Math.max(wait, t.resetAt - now);
    return wait;
  }

  function pickNow(pool: PoolDefinition, ask?: PickAsk): PickResult {
    const now = clock();
    maybeSweep(now);
    const n = pool.keys.length;
    if (n === 0) return NO_KEYS;
    const v = view(pool, now);
    const cutoff = now - pool.windowMs;
    // Issue 22, as pick.lua: a queue or a scarce pool may hold a usable key back.
    const fs = v.state.fair;
    const user = ask?.user ?? '';
    const weight = ask?.weight ?? 1;
    const queueMax = ask?.queueMax ?? 0;
    const waitMs = Math.max(0, Math.floor(ask?.waitMs ?? 0));
    // As pick.lua: fair share needs a requests limit, configured or stated to an account.
    const fairOn = user !== '' && (pool.rpm > 0 || anyRequestsLimit(v));
    const scarce = fairOn && fs.scarceAt > now - 2 * pool.windowMs;
    let hold = false;
    let ahead = 0;
    let free = 0;
    let holdCapacity = 0;
    let mine: Waiter | null = null;
    if (fs.queued || scarce) {
      let capacity = 0;
      const seen = new Set<AccountState>();
      for (let i = 0; i < n; i++) {
        const account = v.accountOfKey[i]!;
        if (v.keys[i]!.disabled !== null || seen.has(account)) continue;
        seen.add(account);
        if (account.coolUntil > now) continue;
        const rpm = rpmOf(account, pool);
        if (rpm > 0) {
          capacity += rpm;
          if (usable(account, pool, now, cutoff)) free += Math.max(0, rpm - requestsOf(account, pool, now));
        } else if (usable(account, pool, now, cutoff)) free = Infinity;
      }
      holdCapacity = capacity;
      let users: ReturnType<typeof activeUsers> | null = null;
      if (fairOn) {
        users = activeUsers(fs, now, pool.windowMs);
        noteAsked(fs, user, weight, now);
        users.active.set(user, weight);
        if (!users.use.has(user)) users.use.set(user, 0);
      }
      if (fs.queued) {
        const length = trimQueue(fs, now);
        let rank = -1;
        if (length > 0 && ask?.ticket) {
          rank = fs.queue.findIndex((w) => w.member === ask.ticket);
          if (rank >= 0) mine = fs.queue[rank]!;
        }
        if (length > 0 && rank < 0 && free <= length && waitMs > 0 && length < queueMax) {
          mine = joinQueue(fs, now, waitMs, user, weight, users?.use.get(user));
          rank = fs.queue.indexOf(mine);
        }
        ahead = rank >= 0 ? rank : length;
        if (length > 0 && free <= ahead) hold = true;
      }
      if (!hold && scarce && users && free >= 1 && free !== Infinity && !fairAllows(users.use, users.active, user, capacity, free)) hold = true;
    }
    if (hold) {
      // Held back: when enough of the window has left to serve this place (see pick.lua).
      const k = Math.max(1, ahead + 1 - free);
      const times: number[] = [];
      const seen = new Set<AccountState>();
      for (let i = 0; i < n; i++) {
        const account = v.accountOfKey[i]!;
        if (v.keys[i]!.disabled !== null || seen.has(account)) continue;
        seen.add(account);
        if (account.coolUntil > now) times.push(account.coolUntil - now);
        else if (rpmOf(account, pool) > 0) {
          account.requests.trim(cutoff);
          for (let j = 0; j < Math.min(k, account.requests.size); j++) times.push(account.requests.timeAt(j) + pool.windowMs - now);
        }
      }
      times.sort((a, b) => a - b);
      const wait = times[Math.min(k, times.length) - 1] ?? pool.windowMs / Math.max(1, holdCapacity);
      return refuse(fs, mine, pool, now, ask, fairOn, Math.max(1, Math.ceil(wait)));
    }
    const start = v.state.cursor % n;
    let chosen = -1;
    let anyEnabled = false;
    if (pool.strategy === 'least-loaded') {
      let best = Infinity;
      for (let step = 0; step < n; step++) {
        const i = (start + step) % n;
        if (v.keys[i]!.disabled !== null) continue;
        anyEnabled = true;
        const account = v.accountOfKey[i]!;
        if (!usable(account, pool, now, cutoff)) continue;
        // One rpm for the whole pool, so the lowest ratio is the lowest count.
        const load = requestsOf(account, pool, now);
        if (load < best) {
          best = load;
          chosen = i;
        }
      }
    } else {
      for (let step = 0; step < n; step++) {
        const i = (start + step) % n;
        if (v.keys[i]!.disabled !== null) continue;
        anyEnabled = true;
        if (usable(v.accountOfKey[i]!, pool, now, cutoff)) {
          chosen = i;
          break;
        }
      }
    }
    if (chosen >= 0) {
      const account = v.accountOfKey[chosen]!;
      if (pool.rpm > 0 || (account.learned !== null && account.learned.requests !== null)) {
        account.requests.trim(cutoff);
        account.requests.push(now);
      } else {
        account.approx.addRequest(now, pool.windowMs);
      }
      v.state.cursor = chosen + 1;
      if (fairOn) countServed(fs, user, weight, now, pool.windowMs);
      if (mine) {
        leaveQueue(fs, (mine as Waiter).member);
        if (fs.queue.length === 0) fs.queued = false;
      }
      return v.granted[chosen]!;
    }
    if (!anyEnabled) return NO_KEYS;
    if (pool.rpm > 0 || pool.tpm > 0 || anyRequestsLimit(v)) fs.scarceAt = now;
    if (fairOn) noteAsked(fs, user, weight, now);
    let wait = Infinity;
    for (let i = 0; i < n; i++) {
      if (v.keys[i]!.disabled !== null) continue;
      wait = Math.min(wait, waitOf(v.accountOfKey[i]!, pool, now));
    }
    return refuse(fs, mine, pool, now, ask, fairOn, Math.max(1, Math.ceil(wait)));
  }

  /** A busy answer; a request that may wait and is not yet queued joins, unless the queue is full. */
  function refuse(fs: FairPoolState, mine: Waiter | null, pool: PoolDefinition, now: number, ask: PickAsk | undefined, fairOn: boolean, wait: number): PickResult {
    const waitMs = Math.max(0, Math.floor(ask?.waitMs ?? 0));
    const queueMax = ask?.queueMax ?? 0;
    if (!mine && waitMs > 0 && queueMax > 0 && fs.queue.length < queueMax) {
      const user = ask?.user ?? '';
      mine = joinQueue(fs, now, waitMs, user, ask?.weight ?? 1, fairOn ? useOf(fs, user, now, pool.windowMs) : undefined);
    }
    return mine ? { ok: false, reason: 'busy', retryAfterMs: wait, ticket: mine.member } : { ok: false, reason: 'busy', retryAfterMs: wait };
  }

  function fairnessNow(pool: PoolDefinition): FairnessState {
    const now = clock();
    const fs = view(pool, now).state.fair;
    const { use, active } = activeUsers(fs, now, pool.windowMs);
    const users = [...active].map(([userId, weight]) => ({ userId, weight, requests: use.get(userId) ?? 0 }));
    const live = fs.queue.filter((w) => w.deadline > now);
    const oldestJoinedAt = live.length === 0 ? null : Math.min(...live.map((w) => w.joinedAt));
    return { users, queue: { length: live.length, oldestJoinedAt }, now };
  }

  function recordNow(pool: PoolDefinition, fingerprint: string, outcome: Outcome): void {
    const now = clock();
    const v = view(pool, now);
    const i = v.indexOf.get(fingerprint);
    if (i === undefined) return; // the key left the pool's configuration meanwhile
    const account = v.accountOfKey[i]!;
    if (outcome.kind !== 'rejected' && outcome.kind !== 'transient' && outcome.limits) {
      account.learned = mergeObservation(account.learned, outcome.limits, now, pool.windowMs);
    }
    switch (outcome.kind) {
      case 'success':
        if (outcome.tokens <= 0) return;
        if (!exactTokens(account, pool)) {
          account.approx.addTokens(now, pool.windowMs, outcome.tokens);
        } else {
          account.tokens.trim(now - pool.windowMs);
          account.tokens.push(now, outcome.tokens);
        }
        return;
      case 'rate_limited':
      case 'quota_exhausted': {
        const until = now + Math.max(0, outcome.cooldownMs);
        // A short 429 must not cut a long quota cooldown short.
        if (until > account.coolUntil) {
          account.coolUntil = until;
          account.coolReason = outcome.kind;
        }
        return;
      }
      case 'rejected':
        v.keys[i]!.disabled ??= 'rejected';
        return;
      case 'transient':
        return;
    }
  }

  function addNow(pool: PoolDefinition, fingerprint: string, entries: readonly WindowEntry[]): void {
    const now = clock();
    const v = view(pool, now);
    const i = v.indexOf.get(fingerprint);
    if (i === undefined) return;
    const account = v.accountOfKey[i]!;
    const cutoff = now - pool.windowMs;
    // Oldest first, and never before the log's newest entry: a log is in time order (an entry
    // moved later leaves the window later, which only ever counts it for longer).
    for (const entry of [...entries].sort((a, b) => b.ageMs - a.ageMs)) {
      const at = now - Math.max(0, entry.ageMs);
      if (at <= cutoff) continue;
      if (entry.requests > 0) {
        if (exactRequests(account, pool)) {
          const time = account.requests.size > 0 ? Math.max(at, account.requests.timeAt(account.requests.size - 1)) : at;
          for (let n = 0; n < entry.requests; n++) account.requests.push(time);
        } else account.approx.addRequest(now, pool.windowMs, entry.requests);
      }
      if (entry.tokens > 0) {
        if (exactTokens(account, pool)) {
          const time = account.tokens.size > 0 ? Math.max(at, account.tokens.timeAt(account.tokens.size - 1)) : at;
          account.tokens.push(time, entry.tokens);
        } else account.approx.addTokens(now, pool.windowMs, entry.tokens);
      }
    }
  }

  return {
    pick(pool, ask) {
      return Promise.resolve(pickNow(pool, ask));
    },
    leave(pool, ticket) {
      leaveQueue(view(pool, clock()).state.fair, ticket);
      return Promise.resolve();
    },
    fairness(pool) {
      return Promise.resolve(fairnessNow(pool));
    },
    add(pool, fingerprint, entries) {
      addNow(pool, fingerprint, entries);
      return Promise.resolve();
    },
    record(pool, fingerprint, outcome) {
      recordNow(pool, fingerprint, outcome);
      return Promise.resolve();
    },
    setEnabled(pool, fingerprint, enabled) {
      const v = view(pool, clock());
      const i = v.indexOf.get(fingerprint);
      if (i !== undefined) v.keys[i]!.disabled = enabled ? null : 'admin_disabled';
      return Promise.resolve();
    },
    status(pool) {
      const now = clock();
      const v = view(pool, now);
      const states: KeyState[] = pool.keys.map((key, i) => {
        const account = v.accountOfKey[i]!;
        const disabled = v.keys[i]!.disabled;
        const cooling = account.coolUntil > now;
        return {
          fingerprint: key.fingerprint,
          account: key.account,
          status: disabled ? 'disabled' : cooling ? 'cooling' : 'ok',
          reason: disabled ?? (cooling ? account.coolReason : null),
          until: !disabled && cooling ? account.coolUntil : null,
          requestsThisWindow: requestsOf(account, pool, now),
          tokensThisWindow: tokensOf(account, pool, now),
          learned: account.learned,
        };
      });
      return Promise.resolve(states);
    },
    now() {
      return Promise.resolve(clock());
    },
    close() {
      pools.clear();
      return Promise.resolve();
    },
  };
}
