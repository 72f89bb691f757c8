import type { HttpMethod } from '@azure/functions';

import { functionDefinitions } from '../app/definitions';

/**
 * What the Functions host needs to know of each function before any request:
 * its kind, name, methods and route, or schedule (the table of
 * src/app/definitions.ts without its handlers). The entry registers these and
 * loads the handlers on the first invocation (see index.ts).
 *
 * NOTE: the bundle build (dev/bundle/build.mjs) replaces this module with the
 * table it computes by running this very code against the built app, so the
 * entry the host loads carries the table as data, not the routes, schemas and
 * SDKs it is derived from; from the sources it is computed here.
 */
export type FunctionShape =
  | { kind: 'http'; name: string; methods: HttpMethod[]; route: string }
  | { kind: 'timer'; name: string; schedule: string };

export function functionTable(): FunctionShape[] {
  return functionDefinitions(() => {
    throw new Error('listing the function table needs no services');
  }).map((definition) =>
    definition.kind === 'http'
      ? {
          kind: 'http',
          name: definition.name,
          methods: definition.methods,
          route: definition.route,
        }
      : { kind: 'timer', name: definition.name, schedule: definition.schedule },
  );
}
