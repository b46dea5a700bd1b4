import { fingerprintOf } from '../pool/keyIdentity';
import { isStreamFault, type MockFault, type MockFaultOptions, type MockProviderName } from './mockFault';

interface Entry {
  fault: MockFault;
  provider: MockProviderName | undefined;
  /** Requests left; Infinity when sticky. */
  remaining: number;
}

export interface MockFaultListing {
  fingerprint: string;
  fault: MockFault;
  provider: MockProviderName | 'any';
  remaining: number | 'sticky';
}

/**
 * Faults queued per key fingerprint, first in first out. The secret itself is never stored: a
 * test names the key, the mock keeps its fingerprint (server/pool/keyIdentity).
 */
export class MockFaults {
  private readonly byFingerprint = new Map<string, Entry[]>();

  inject(key: string, fault: MockFault, options: MockFaultOptions = {}): void {
    this.injectByFingerprint(fingerprintOf(key), fault, options);
  }

  injectByFingerprint(fingerprint: string, fault: MockFault, options: MockFaultOptions = {}): void {
    const remaining = options.sticky ? Number.POSITIVE_INFINITY : (options.times ?? 1);
    const list = this.byFingerprint.get(fingerprint) ?? [];
    list.push({ fault, provider: options.provider, remaining });
    this.byFingerprint.set(fingerprint, list);
  }

  /** Clears one key's faults, or all of them. */
  clear(key?: string): void {
    if (key === undefined) this.byFingerprint.clear();
    else this.byFingerprint.delete(fingerprintOf(key));
  }

  clearFingerprint(fingerprint: string): void {
    this.byFingerprint.delete(fingerprint);
  }

  list(): MockFaultListing[] {
    const out: MockFaultListing[] = [];
    for (const [fingerprint, entries] of this.byFingerprint) {
      for (const e of entries) {
        out.push({ fingerprint, fault: e.fault, provider: e.provider ?? 'any', remaining: Number.isFinite(e.remaining) ? e.remaining : 'sticky' });
      }
    }
    return out;
  }

  /** The fault this request meets, if any, using up one of its turns. */
  take(fingerprint: string, provider: MockProviderName, stream: boolean): MockFault | undefined {
    const list = this.byFingerprint.get(fingerprint);
    if (!list) return undefined;
    const index = list.findIndex((e) => (e.provider === undefined || e.provider === provider) && (stream || !isStreamFault(e.fault)));
    const entry = list[index];
    if (!entry) return undefined;
    entry.remaining -= 1;
    if (entry.remaining <= 0) {
      list.splice(index, 1);
      if (list.length === 0) this.byFingerprint.delete(fingerprint);
    }
    return entry.fault;
  }
}
