import { fingerprintOf, maskOf } from '../pool/keyIdentity';
import type { MockProviderName } from './mockFault';

export interface MockCounters {
  requests: number;
  /** Requests that asked to stream. */
  streams: number;
  /** Answers sent to the end (2xx, body complete). */
  completed: number;
  /** Non-2xx answers sent, 429s included. */
  errors: number;
  /** 429s sent (rate limits, faults and quota). */
  rateLimited: number;
  /** Faults played. */
  faults: number;
  /** The client went away before the answer finished (its abort reached the mock). */
  aborted: number;
  /** Streams the mock cut on purpose (cutStream). */
  cut: number;
}

export interface MockKeyStats {
  fingerprint: string;
  mask: string;
  total: MockCounters;
  byProvider: Partial<Record<MockProviderName, MockCounters>>;
}

export interface MockStatsSnapshot {
  total: MockCounters;
  /** Requests that carried no key at all. */
  unauthenticated: number;
  keys: MockKeyStats[];
}

export type MockCounterName = keyof MockCounters;

export function zeroCounters(): MockCounters {
  return { requests: 0, streams: 0, completed: 0, errors: 0, rateLimited: 0, faults: 0, aborted: 0, cut: 0 };
}

/** Counts what the mock served, per key fingerprint (never the key) and provider. */
export class MockStats {
  private total = zeroCounters();
  private unauthenticated = 0;
  private readonly keys = new Map<string, MockKeyStats>();

  noKey(): void {
    this.unauthenticated += 1;
  }

  /** The counters one request bumps: the grand total, the key's total and the key's provider's. */
  countersFor(fingerprint: string, mask: string, provider: MockProviderName): (name: MockCounterName) => void {
    let key = this.keys.get(fingerprint);
    if (!key) this.keys.set(fingerprint, (key = { fingerprint, mask, total: zeroCounters(), byProvider: {} }));
    const keyTotal = key.total;
    const byProvider = (key.byProvider[provider] ??= zeroCounters());
    return (name) => {
      this.total[name] += 1;
      keyTotal[name] += 1;
      byProvider[name] += 1;
    };
  }

  snapshot(): MockStatsSnapshot {
    return structuredClone({ total: this.total, unauthenticated: this.unauthenticated, keys: [...this.keys.values()] });
  }

  /** One key's counters (zeros if it never called). */
  forKey(key: string): MockKeyStats {
    const fingerprint = fingerprintOf(key);
    const found = this.keys.get(fingerprint);
    return found ? structuredClone(found) : { fingerprint, mask: maskOf(key), total: zeroCounters(), byProvider: {} };
  }

  reset(): void {
    this.total = zeroCounters();
    this.unauthenticated = 0;
    this.keys.clear();
  }
}
