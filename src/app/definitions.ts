import type { HttpHandler, HttpMethod, InvocationContext, Timer } from '@azure/functions';

import { createHandlers } from '../api/handlers';
import { createConsoleHandlers } from '../console/handler';
import { processConsoleSettings } from '../console/settings';
import type { Services } from './services';

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
  const h = createHandlers(services);
  const page = createConsoleHandlers({ settings: processConsoleSettings });
  const http = (
    name: string,
    methods: HttpMethod[],
    route: string,
    handler: HttpHandler,
  ): HttpDefinition => ({
    kind: 'http',
    name,
    methods,
    route,
    handler,
  });
  return [
    http('grantLease', ['POST'], 'leases', h.grantLease),
    http('listLeases', ['GET'], 'leases', h.listLeases),
    http('getLease', ['GET'], 'leases/{id}', h.getLease),
    http('releaseLease', ['DELETE'], 'leases/{id}', h.releaseLease),
    http('renewLease', ['POST'], 'leases/{id}/renew', h.renewLease),
    http('listVaults', ['GET'], 'vaults', h.listVaults),
    http('listAudit', ['GET'], 'audit', h.listAudit),
    http('health', ['GET'], 'health', h.health),
    http('openApi', ['GET'], 'openapi.json', h.openApi),
    // The operator console (src/console): the page, its bundle and its sign-in settings.
    http('console', ['GET'], 'console', page.page),
    http('consoleFile', ['GET'], 'console/{file}', page.asset),
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
