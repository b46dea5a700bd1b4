import type { ProviderId } from '../../shared';
import type { AcquireOptions, AcquireResult, KeyLease, LeaseOutcome } from '../pool/KeyPool';

// One definition of a lease and its outcomes: the pool's. Re-exported so dispatch code and its
// callers need not know where they live.
export type { AcquireOptions, AcquireResult, KeyLease, LeaseOutcome };

/**
 * What the dispatcher needs of the key pool (server/pool/KeyPool.ts satisfies it structurally).
 * Kept as an interface so the dispatcher can be tested and reused with any key source.
 */
export interface DispatchKeyPool {
  /** Env pools are named after their provider. */
  acquire(poolId: string, options?: AcquireOptions): Promise<AcquireResult>;
  report(lease: KeyLease, outcome: LeaseOutcome): Promise<void>;
}

/**
 * An extra place to take keys from, tried before the provider's env pool (e.g. the user's BYOK
 * keys: `(provider) => pool.acquireFrom(byokConfig(userId, provider))`). Leases are reported back
 * through the pool's `report`, which finds the pool by `lease.poolId`.
 */
export type KeySource = (provider: ProviderId) => Promise<AcquireResult>;

/** One upstream attempt, for metrics. */
export interface AttemptRecord {
  provider: ProviderId;
  model: string;
  keyFingerprint: string;
  outcome: LeaseOutcome['kind'] | 'bad_request' | 'aborted' | 'interrupted';
  durationMs: number;
  requestId?: string;
}

export interface DispatchHooks {
  onAttempt?(attempt: AttemptRecord): void;
}
