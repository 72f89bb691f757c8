import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The Functions invocation a piece of work runs for, so that audit entries
 * written far from the handler (the coordinator's expiry, firewall-write and
 * capacity events) still carry an invocation id to correlate with logs.
 *
 * A writer pass runs in the async context of the request that started it, so
 * its events carry that request's invocation id, even when other requests'
 * changes ride along in the same pass.
 */
const scope = new AsyncLocalStorage<{ invocationId: string }>();

export function runInInvocation<T>(invocationId: string, work: () => Promise<T>): Promise<T> {
  return scope.run({ invocationId }, work);
}

export function currentInvocationId(): string | undefined {
  return scope.getStore()?.invocationId;
}
