import { app, HttpRequest, InvocationContext } from '@azure/functions';

import type * as Config from '../app/config';
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
 * NOTE: the halves are loaded with require(), not import(): the bundle build
 * (dev/bundle/build.mjs) keeps each as a require of its chunk file beside the
 * entry (config.js, handlers.js), compiled only when first called, and a
 * synchronous load keeps the configuration check at load below synchronous.
 */

let handlers: typeof Handlers | undefined;

function loadHandlers(): typeof Handlers {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  handlers ??= require('./handlers') as typeof Handlers;
  return handlers;
}

function loadConfigModule(): typeof Config {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../app/config') as typeof Config;
}

// NOTE: in Azure the configuration is checked when the host loads the app, as
// composition.ts does when it loads (which is now on the first request): a bad
// setting (AUTH_MODE=disabled above all) stops the worker with the message in
// the host's log, and no function is served.
{
  const { loadConfig, runsInAzure } = loadConfigModule();
  if (runsInAzure(process.env)) loadConfig(process.env);
}

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
  const { ConfigError, loadConfig } = loadConfigModule();
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
