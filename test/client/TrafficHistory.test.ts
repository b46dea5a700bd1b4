import { describe, expect, it } from 'vitest';
import type { KeyStatus, PoolStatus } from '../../shared';
import { TrafficHistory } from '../../client/demo/admin/TrafficHistory';

const key = (fingerprint: string, requests: number, cooling?: { until: number }): KeyStatus => ({
  fingerprint,
  mask: 'sk-…' + fingerprint,
  account: null,
  status: cooling ? 'cooling' : 'ok',
  reason: cooling ? 'rate_limited' : null,
  until: cooling?.until ?? null,
  requestsThisWindow: requests,
  rpmLimit: 60,
  tokensThisWindow: 0,
  tpmLimit: 0,
  percentUsed: 0,
});

const snapshot = (second: number, keys: KeyStatus[]): PoolStatus => ({
  at: second * 1000,
  windowMs: 60_000,
  providers: [
    {
      provider: 'openai',
      strategy: 'round-robin',
      keys,
      totals: { keys: keys.length, ok: 0, cooling: 0, disabled: 0, requestsThisWindow: 0, capacityRpm: 0 },
    },
  ],
});

describe('TrafficHistory', () => {
  it('turns window counts into arrivals per second, counting what left the window', () => {
    const history = new TrafficHistory(120);
    history.add(snapshot(1000, [key('a', 0)]));
    history.add(snapshot(1001, [key('a', 3)]));
    history.add(snapshot(1005, [key('a', 5)]));
    // One window later the first three leave while two arrive: the count drops by one.
    history.add(snapshot(1061, [key('a', 4)]));
    const series = history.series(1061_000);
    const at = (s: number) => series.find((p) => p.second === s)!.requests;
    expect(at(1001)).toBe(3);
    expect(at(1005)).toBe(2);
    expect(at(1061)).toBe(2);
    expect(series).toHaveLength(120);
  });

  it('counts each new rate-limit cooldown once', () => {
    const history = new TrafficHistory(60);
    history.add(snapshot(2000, [key('a', 1), key('b', 1)]));
    history.add(snapshot(2001, [key('a', 2, { until: 2_030_000 }), key('b', 1)]));
    history.add(snapshot(2002, [key('a', 2, { until: 2_030_000 }), key('b', 2, { until: 2_031_000 })]));
    const series = history.series(2002_000);
    expect(series.reduce((sum, p) => sum + p.limited, 0)).toBe(2);
  });
});
