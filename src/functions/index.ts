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
