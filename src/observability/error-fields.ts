import { redact } from './redact';

/**
 * What a log line says about a failure: the error and the chain of its
 * causes (`name: message` each, redacted), so every logged failure carries
 * why it happened — a store outage's SDK error behind STORE.UNAVAILABLE, a
 * bug's TypeError.
 */
export function errorFields(error: unknown): { error: string; cause?: string } {
  const describe = (value: unknown) =>
    value instanceof Error ? `${value.name}: ${value.message}` : 'non-error thrown';
  const causes: string[] = [];
  let cause = error instanceof Error ? error.cause : undefined;
  for (let depth = 0; cause !== undefined && depth < 5; depth += 1) {
    causes.push(describe(cause));
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return {
    error: redact(describe(error)).slice(0, 2048),
    ...(causes.length > 0 ? { cause: redact(causes.join(' <- ')).slice(0, 2048) } : {}),
  };
}
