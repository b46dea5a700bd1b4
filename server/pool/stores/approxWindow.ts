/**
 * Approximate sliding-window counts for UNLIMITED limits (rpm or tpm 0). There the counts only
 * feed status and least-loaded, and an exact log of an unlimited stream grows without bound.
 * Estimate: this window-aligned bucket plus the previous bucket weighted by how much of it
 * still overlaps the window. lua/common.lua computes exactly the same numbers.
 */
export class ApproxWindow {
  private bucket = -Infinity;
  private requests = 0;
  private previousRequests = 0;
  private tokens = 0;
  private previousTokens = 0;

  private shift(now: number, windowMs: number): number {
    const bucket = Math.floor(now / windowMs);
    if (bucket > this.bucket) {
      const adjacent = bucket === this.bucket + 1;
      this.previousRequests = adjacent ? this.requests : 0;
      this.previousTokens = adjacent ? this.tokens : 0;
      this.requests = 0;
      this.tokens = 0;
      this.bucket = bucket;
    }
    // Share of the previous bucket still inside the window, as a numerator over windowMs.
    return windowMs - (now - bucket * windowMs);
  }

  requestsAt(now: number, windowMs: number): number {
    const remaining = this.shift(now, windowMs);
    return this.requests + Math.floor((this.previousRequests * remaining) / windowMs);
  }

  tokensAt(now: number, windowMs: number): number {
    const remaining = this.shift(now, windowMs);
    return this.tokens + Math.floor((this.previousTokens * remaining) / windowMs);
  }

  addRequest(now: number, windowMs: number, count = 1): void {
    this.shift(now, windowMs);
    this.requests += count;
  }

  addTokens(now: number, windowMs: number, tokens: number): void {
    this.shift(now, windowMs);
    this.tokens += tokens;
  }
}
