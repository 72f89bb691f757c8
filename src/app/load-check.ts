import { loadConfig, runsInAzure } from './config';

/**
 * In Azure the configuration is checked when the Functions host loads the
 * app, not on the first request: a bad setting (AUTH_MODE=disabled above
 * all) stops the worker with the message in the host's log, and no function
 * is served. Outside Azure, the local runner and the tests check it themselves.
 * The entry (src/functions/index.ts) calls this at load: the composition
 * root is loaded only by the first invocation.
 */
export function checkConfigurationAtLoad(env: NodeJS.ProcessEnv = process.env): void {
  if (runsInAzure(env)) loadConfig(env);
}
