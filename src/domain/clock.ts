/** The only source of "now" for domain logic, so expiry is testable to the millisecond. */
export interface Clock {
  now(): number;
}

// eslint-disable-next-line no-restricted-syntax -- the one real clock, injected everywhere else
export const systemClock: Clock = { now: () => Date.now() };
