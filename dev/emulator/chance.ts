/**
 * mulberry32: a tiny seeded PRNG, so a test that injects faults can replay the same sequence.
 * Not for anything security-related.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Resource Manager's write throttle: a bucket of `capacity` tokens refilling continuously at
 * `refillPerSecond`; each write takes one.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly capacity: number,
    private readonly refillPerSecond: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.updatedAt = now;
  }

  /** Takes a token, or answers how many whole seconds (at least 1) until one is back. */
  take(now: number): { ok: true; remaining: number } | { ok: false; retryAfterSeconds: number } {
    const elapsedSeconds = Math.max(0, now - this.updatedAt) / 1000;
    this.tokens = Math.min(this.capacity, this.tokens + elapsedSeconds * this.refillPerSecond);
    this.updatedAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true, remaining: Math.floor(this.tokens) };
    }
    const secondsToToken = (1 - this.tokens) / this.refillPerSecond;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(secondsToToken)) };
  }
}
