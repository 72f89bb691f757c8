import { services } from '../app/composition';
import { type FunctionDefinition, functionDefinitions } from '../app/definitions';

/**
 * The half of the Function App that the first invocation loads (the entry,
 * index.ts, registers the functions without it): the handlers of the table in
 * src/app/definitions.ts and, through them, the routes, schemas, composition
 * root and SDKs. Bundled as dist/app/handlers.js beside the entry.
 */

const definitions = new Map<string, FunctionDefinition>(
  functionDefinitions(services).map((definition) => [definition.name, definition]),
);

/** The definition registered under `name` (the entry registers from the same table). */
export function definition(name: string): FunctionDefinition {
  const found = definitions.get(name);
  if (!found) throw new Error(`No function ${name} in the table`);
  return found;
}

/** The instance is going away: hand its writer locks over at once. */
export function shutdown(): Promise<void> {
  return services().shutdown();
}

// What the local runner answers with itself (see index.ts, runnerParts).
export { problemResponse } from '../api/problem';
export { MAX_BODY_BYTES } from '../contract';
export { DomainError } from '../domain/errors';
export { functionTable } from './table';
