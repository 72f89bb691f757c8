import type { HttpHandler, HttpMethod, InvocationContext, Timer } from '@azure/functions';

import { httpHandler } from '../api/handle';
import { methodNotAllowedResponse } from '../api/problem';
import { routes } from '../api/routes';
import type { Services } from '../api/services';
import { createConsoleHandlers } from '../console/handler';
import { processConsoleSettings } from '../console/settings';
import { methodNotAllowedName } from './function-names';

/**
 * The one table of function definitions. The Functions host entry point
 * (`src/functions/index.ts`, bundled into dist/app/index.js) registers it with
 * `app.http`/`app.timer`; the local runner loads that bundle and serves what
 * it registers (`dev/local/app-loader.ts`).
 */
export interface HttpDefinition {
  kind: 'http';
  name: string;
  methods: HttpMethod[];
  /** Route below the `api` prefix of host.json. */
  route: string;
  handler: HttpHandler;
  /**
   * Answers 405 (with `Allow`) on its route: registered for the methods no
   * other definition of the route serves; the local runner sends it any
   * other method as well (it knows it by its name: function-names.ts).
   */
  refusesOtherMethods?: true;
}

export interface TimerDefinition {
  kind: 'timer';
  name: string;
  /** NCRONTAB with `%SETTING%` placeholders, as the host reads it. */
  schedule: string;
  handler: (timer: Timer, context: InvocationContext) => Promise<void>;
}

export type FunctionDefinition = HttpDefinition | TimerDefinition;

/** Methods a 405 definition is registered for, less those its route serves (and `Allow`'s order). */
const REFUSABLE_METHODS: HttpMethod[] = [
  'GET',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'HEAD',
  'OPTIONS',
];

/**
 * One 405 definition per route, derived from the others, so a new route (or
 * a new method of one) gets its `Allow` without an edit here. Without them
 * the host answers an unknown method on a known path with a bare 404.
 */
function methodNotAllowed(http: HttpDefinition[]): HttpDefinition[] {
  const served = new Map<string, HttpMethod[]>();
  for (const definition of http) {
    served.set(definition.route, [...(served.get(definition.route) ?? []), ...definition.methods]);
  }
  return [...served].map(([route, methods]) => {
    const allow = REFUSABLE_METHODS.filter((method) => methods.includes(method));
    return {
      kind: 'http',
      name: methodNotAllowedName(route),
      methods: REFUSABLE_METHODS.filter((method) => !methods.includes(method)),
      route,
      handler: (request) =>
        Promise.resolve(
          methodNotAllowedResponse(request.method, new URL(request.url).pathname, allow),
        ),
      refusesOtherMethods: true,
    };
  });
}

export function functionDefinitions(services: () => Services): FunctionDefinition[] {
  const page = createConsoleHandlers({ settings: processConsoleSettings });
  const http: HttpDefinition[] = [
    ...routes.map((route): HttpDefinition => ({
      kind: 'http',
      name: route.name,
      methods: route.methods,
      route: route.route,
      handler: httpHandler(route, services),
    })),
    // The operator console (src/console): the page, its bundle and its sign-in settings.
    { kind: 'http', name: 'console', methods: ['GET'], route: 'console', handler: page.page },
    {
      kind: 'http',
      name: 'consoleFile',
      methods: ['GET'],
      route: 'console/{file}',
      handler: page.asset,
    },
  ];
  return [
    ...http,
    ...methodNotAllowed(http),
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
