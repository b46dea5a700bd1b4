import type { PoolStatus } from '../../../shared';

export interface TrafficPoint {
  /** Epoch second. */
  second: number;
  requests: number;
  /** Keys that went into a rate-limit cooldown (the provider answered 429). */
  limited: number;
}

/**
 * Requests per second and 429s, rebuilt from successive pool snapshots.
 *
 * A snapshot only says how many requests each key served in the last window (a minute). The
 * change between two snapshots is arrivals minus departures, and what departs now is what
 * arrived one window ago, which this history already knows (before the first snapshot, the
 * first window's count is taken as spread evenly). So arrivals = change + departures.
 */
export class TrafficHistory {
  #arrivals = new Map<number, number>();
  #limited = new Map<number, number>();
  #previous: { second: number; total: number; cooling: Map<string, number | null> } | null = null;
  #first: { second: number; perSecond: number; windowSeconds: number } | null = null;

  constructor(readonly horizonSeconds = 180) {}

  add(status: PoolStatus): void {
    const second = Math.floor(status.at / 1000);
    const windowSeconds = Math.max(1, Math.round(status.windowMs / 1000));
    const keys = status.providers.flatMap((p) => p.keys.map((k) => ({ ...k, id: `${p.provider}:${k.fingerprint}` })));
    const total = keys.reduce((sum, k) => sum + k.requestsThisWindow, 0);
    const cooling = new Map(keys.filter((k) => k.status === 'cooling' && k.reason === 'rate_limited').map((k) => [k.id, k.until]));

    const previous = this.#previous;
    if (!previous) {
      this.#first = { second, perSecond: total / windowSeconds, windowSeconds };
    } else if (second >= previous.second) {
      let departed = 0;
      for (let s = previous.second + 1 - windowSeconds; s <= second - windowSeconds; s++) departed += this.#arrivalsAt(s);
      const arrived = Math.max(0, Math.round(total - previous.total + departed));
      if (arrived > 0) this.#arrivals.set(second, (this.#arrivals.get(second) ?? 0) + arrived);
      let newlyLimited = 0;
      for (const [id, until] of cooling) if (!previous.cooling.has(id) || previous.cooling.get(id) !== until) newlyLimited++;
      if (newlyLimited > 0) this.#limited.set(second, (this.#limited.get(second) ?? 0) + newlyLimited);
    }
    this.#previous = { second, total, cooling };
    this.#prune(second - Math.max(this.horizonSeconds, windowSeconds) - 5);
  }

  /** One point per second over the horizon, ending at `nowMs`. */
  series(nowMs: number): TrafficPoint[] {
    const end = Math.floor(nowMs / 1000);
    const points: TrafficPoint[] = [];
    for (let s = end - this.horizonSeconds + 1; s <= end; s++) {
      points.push({ second: s, requests: this.#arrivals.get(s) ?? 0, limited: this.#limited.get(s) ?? 0 });
    }
    return points;
  }

  #arrivalsAt(second: number): number {
    const first = this.#first;
    if (first && second <= first.second) return second > first.second - first.windowSeconds ? first.perSecond : 0;
    return this.#arrivals.get(second) ?? 0;
  }

  #prune(before: number): void {
    for (const s of this.#arrivals.keys()) if (s < before) this.#arrivals.delete(s);
    for (const s of this.#limited.keys()) if (s < before) this.#limited.delete(s);
  }
}
