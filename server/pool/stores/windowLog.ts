/**
 * An exact sliding-window log: timestamps (and optional amounts) in a growable ring buffer.
 * The memory store picks millions of times a second, so the hot path allocates nothing:
 * entries are two Float64Array slots, trimmed from the head as they leave the window.
 *
 * An entry recorded at `t` is inside the window at `now` while `t > now - windowMs`, so it
 * leaves at exactly `t + windowMs` (the Redis store uses the same rule).
 */
export class WindowLog {
  private times: Float64Array;
  private amounts: Float64Array | null;
  private mask: number;
  private head = 0;
  /** Entries currently held (some may be stale until the next trim). */
  size = 0;
  /** Sum of held amounts (equals `size` for a log without amounts). */
  sum = 0;

  constructor(withAmounts: boolean, initialCapacity = 16) {
    const capacity = 1 << Math.ceil(Math.log2(Math.max(2, initialCapacity)));
    this.times = new Float64Array(capacity);
    this.amounts = withAmounts ? new Float64Array(capacity) : null;
    this.mask = capacity - 1;
  }

  /** Drop entries that left the window (recorded at or before `cutoff = now - windowMs`). */
  trim(cutoff: number): void {
    const times = this.times;
    const amounts = this.amounts;
    while (this.size > 0 && times[this.head]! <= cutoff) {
      this.sum -= amounts ? amounts[this.head]! : 1;
      this.head = (this.head + 1) & this.mask;
      this.size--;
    }
    if (this.size === 0) this.sum = 0; // no float drift survives an empty window
  }

  push(time: number, amount = 1): void {
    if (this.size > this.mask) this.grow();
    const slot = (this.head + this.size) & this.mask;
    this.times[slot] = time;
    if (this.amounts) this.amounts[slot] = amount;
    this.size++;
    this.sum += this.amounts ? amount : 1;
  }

  /** Time of the i-th oldest held entry. */
  timeAt(i: number): number {
    return this.times[(this.head + i) & this.mask]!;
  }

  amountAt(i: number): number {
    return this.amounts ? this.amounts[(this.head + i) & this.mask]! : 1;
  }

  /**
   * Held entries recorded after `time` (issue 22: picks after the observed request was sent;
   * its own pick, in the same millisecond or before, is in the provider's remaining already).
   * Newest first, so it reads only those.
   */
  countAfter(time: number): number {
    let n = 0;
    for (let i = this.size - 1; i >= 0 && this.timeAt(i) > time; i--) n++;
    return n;
  }

  /** Sum of the held amounts recorded after `time`. */
  sumAfter(time: number): number {
    let sum = 0;
    for (let i = this.size - 1; i >= 0 && this.timeAt(i) > time; i--) sum += this.amountAt(i);
    return sum;
  }

  /**
   * After a trim: how long until the held sum drops below `limit`, i.e. when the oldest entries
   * whose removal brings it under have all left the window. 0 when already below.
   */
  msUntilBelow(limit: number, now: number, windowMs: number): number {
    if (this.sum < limit) return 0;
    let remaining = this.sum;
    for (let i = 0; i < this.size; i++) {
      remaining -= this.amountAt(i);
      if (remaining < limit) return this.timeAt(i) + windowMs - now;
    }
    return windowMs;
  }

  private grow(): void {
    const capacity = (this.mask + 1) * 2;
    const times = new Float64Array(capacity);
    const amounts = this.amounts ? new Float64Array(capacity) : null;
    for (let i = 0; i < this.size; i++) {
      const from = (this.head + i) & this.mask;
      times[i] = this.times[from]!;
      if (amounts) amounts[i] = this.amounts![from]!;
    }
    this.times = times;
    this.amounts = amounts;
    this.head = 0;
    this.mask = capacity - 1;
  }
}
