import { isDomainError, isRefusal } from './errors';
import type { Attempt, EventSink } from './events';
import { type Principal, requireAnyRole, type Role } from './principal';

/**
 * One thing a caller can ask the broker to do. The declaration is the one
 * home of who may ask (`roles`), and `run` the one home of the rules that
 * need the input (owner or admin, LEASE_POLICY, limits) and of the events
 * that say what happened.
 */
export interface UseCase<Input, Output> {
  /** What is attempted, e.g. `grant`: the first word of a refusal's audit entry. */
  name: string;
  /** The lease action a failure of the broker's own is recorded under. */
  action?: Attempt['action'];
  /** Any one of these roles may ask (Lease.Admin implies the others). */
  roles: Role[];
  /** The request in a 403's words: `Requesting a lease needs the Lease.Request role`. */
  purpose: string;
  run(principal: Principal, input: Input, attempt: Attempt): Promise<Output>;
}

/** How a request reaches a use case: who is calling, and what they sent, read only once allowed. */
export interface Invocation<Input> {
  /** Checks that need no caller, run first (the body size): a refusal names no principal. */
  admit?(): Promise<void>;
  authenticate(): Promise<Principal>;
  /** Validates the input, noting on `attempt` what it validated (vault, ip, lease id). */
  input(attempt: Attempt): Promise<Input> | Input;
}

/**
 * Runs a use case: admit (checks that need no caller), authenticate, check
 * the role before the input is even looked at (a caller without the role
 * learns nothing from validation messages), validate, run. Every refusal is one `request-refused` event with
 * who, what and why as far as the request got, and a failure of a lease
 * action one `request-failed` event; then the error goes on to the caller.
 */
export async function perform<Input, Output>(
  useCase: UseCase<Input, Output>,
  invocation: Invocation<Input>,
  events: EventSink,
): Promise<Output> {
  const attempt: Attempt = { attempt: useCase.name, action: useCase.action };
  try {
    await invocation.admit?.();
    attempt.principal = await invocation.authenticate();
    requireAnyRole(attempt.principal, useCase.roles, useCase.purpose);
    const input = await invocation.input(attempt);
    return await useCase.run(attempt.principal, input, attempt);
  } catch (error) {
    if (isRefusal(error))
      await bounded(events.emit({ type: 'request-refused', error, ...attempt }));
    else if (attempt.action !== undefined) {
      const recording = events.emit({ type: 'request-failed', error, ...attempt });
      // NOTE: the store that just failed holds the audit trail too: the entry
      // is still written if it can be, but the 503 goes out at once, within
      // the store timeout, not a wait later.
      if (!isDomainError(error, 'STORE.UNAVAILABLE')) await bounded(recording);
    }
    throw error;
  }
}

/**
 * How long an answer that is already an error waits for its audit entry. The
 * entry is still written after that (its loss logged if the store never
 * answers), but a hung store must not hold the caller past its deadline a
 * second time.
 */
const AUDIT_WAIT_MS = 1000;

function bounded(recording: Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waited = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, AUDIT_WAIT_MS);
  });
  return Promise.race([recording, waited]).finally(() => clearTimeout(timer));
}
