import { app, HttpRequest, InvocationContext } from '@azure/functions';

import { ConfigError, loadConfig } from '../app/config';
import { checkConfigurationAtLoad } from '../app/load-check';
import type * as Handlers from './handlers';
import { functionTable } from './table';

/**
 * Azure Functions host entry point: registration only. It registers every
 * function of the table (src/app/definitions.ts, listed by table.ts) with a
 * thin handler that loads the app's other half (handlers.ts: routes, schemas,
 * composition root, SDKs) on the first invocation of any function. So a cold
 * start loads @azure/functions, the table and the configuration check, and
 * the first request pays for the rest.
 *
 * NOTE: the handlers' half is loaded with require(), not import(): the bundle
 * build (dev/bundle/build.mjs) keeps it as a require of the chunk handlers.js
 * beside the entry, compiled only when first called, and the local runner
 * takes its parts synchronously (runnerParts). The configuration module is a
 * chunk of its own (config.js), loaded at load, as the handlers share it.
 */

let handlers: typeof Handlers | undefined;

function loadHandlers(): typeof Handlers {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  handlers ??= require('./handlers') as typeof Handlers;
  return handlers;
}

checkConfigurationAtLoad();

// The instance is going away (scale-in, deployment): hand its writer locks over at once.
// An instance that never served has none, and nothing to load for it.
app.hook.appTerminate(async () => {
  if (handlers) await handlers.shutdown();
});

for (const shape of functionTable()) {
  const { name } = shape;
  if (shape.kind === 'http') {
    app.http(name, {
      methods: shape.methods,
      route: shape.route,
      authLevel: 'anonymous', // the API validates Entra tokens itself
      handler: (request, context) => {
        const definition = loadHandlers().definition(name);
        if (definition.kind !== 'http') throw new Error(`${name} is not an HTTP function`);
        return definition.handler(request, context);
      },
    });
  } else {
    app.timer(name, {
      schedule: shape.schedule,
      handler: (timer, context) => {
        const definition = loadHandlers().definition(name);
        if (definition.kind !== 'timer') throw new Error(`${name} is not a timer function`);
        return definition.handler(timer, context);
      },
    });
  }
}

/**
 * What the local runner (dev/local/runner.ts) takes from this bundle rather
 * than from its own copies, so that it runs the code that ships and loads it
 * once: the request and context classes it hands the handlers, the
 * configuration check, the problem answers of its own refusals and the body
 * limit. Loads the handlers' half, as a first request would. The Functions
 * host ignores an entry's exports.
 */
export function runnerParts() {
  const { DomainError, MAX_BODY_BYTES, problemResponse } = loadHandlers();
  return {
    ConfigError,
    loadConfig,
    DomainError,
    MAX_BODY_BYTES,
    problemResponse,
    HttpRequest,
    InvocationContext,
  };
}
