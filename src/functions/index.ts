import { app } from '@azure/functions';

import { services } from '../app/composition';
import { functionDefinitions } from '../app/definitions';

/** Azure Functions host entry point: registration only. */
// The instance is going away (scale-in, deployment): hand its writer locks over at once.
app.hook.appTerminate(async () => {
  await services().shutdown();
});

for (const definition of functionDefinitions(services)) {
  if (definition.kind === 'http') {
    app.http(definition.name, {
      methods: definition.methods,
      route: definition.route,
      authLevel: 'anonymous', // the API validates Entra tokens itself
      handler: definition.handler,
    });
  } else {
    app.timer(definition.name, { schedule: definition.schedule, handler: definition.handler });
  }
}

/**
 * What the local runner (dev/local/runner.ts) takes from this bundle rather
 * than from its own copies, so that it runs the code that ships and loads it
 * once: the request and context classes it hands the handlers, the
 * configuration check, the problem answers of its own refusals and the body
 * limit. The Functions host ignores an entry's exports.
 */
export { problemResponse } from '../api/problem';
export { ConfigError, loadConfig } from '../app/config';
export { MAX_BODY_BYTES } from '../contract';
export { DomainError } from '../domain/errors';
export { HttpRequest, InvocationContext } from '@azure/functions';
