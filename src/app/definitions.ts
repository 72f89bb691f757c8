import type { HttpHandler, HttpMethod, InvocationContext, Timer } from '@azure/functions';

import { httpHandler } from '../api/handle';
import { routes } from '../api/routes';
import type { Services } from '../api/services';

/**
 * The one table of function definitions. The Functions host entry point
 * (`src/functions/index.ts`) registers it with `app.http`/`app.timer`; the
 * local runner (`dev/local/runner.ts`) serves the very same entries.
 */
export interface HttpDefinition {
  kind: 'http';
  name: string;
  methods: HttpMethod[];
  /** Route below the `api` prefix of host.json. */
  route: string;
  handler: HttpHandler;
}

export interface TimerDefinition {
  kind: 'timer';
  name: string;
  /** NCRONTAB with `%SETTING%` placeholders, as the host reads it. */
  schedule: string;
  handler: (timer: Timer, context: InvocationContext) => Promise<void>;
}

export type FunctionDefinition = HttpDefinition | TimerDefinition;

export function functionDefinitions(services: () => Services): FunctionDefinition[] {
  return [
    ...routes.map((route): HttpDefinition => ({
      kind: 'http',
      name: route.name,
      methods: route.methods,
      route: route.route,
      handler: httpHandler(route, services),
    })),
    {
      kind: 'timer',
      name: 'sweep',
      // NOTE: no runOnStartup: a cold start must not trigger an extra sweep.
      schedule: '%SWEEP_SCHEDULE%',
      handler: async (_timer, context) => {
        const result = await services().sweep(context.invocationId);
        if (result.failed.length > 0) {
          context.warn(`Sweep left ${result.failed.length} vault(s) for the next run`);
        }
      },
    },
  ];
}
