/** The only source of "now" for domain logic, so expiry is testable to the millisecond. */
export interface Clock {
  now(): number;
}

// eslint-disable-next-line no-restricted-syntax -- the one real clock, injected everywhere else
export const systemClock: Clock = { now: () => Date.now() };

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  constructor(private current: number) {}
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
  set(ms: number): void {
    this.current = ms;
  }
}
