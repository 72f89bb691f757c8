import { type Config, loadConfig } from '../app/config';

/**
 * What the operator console's page needs to sign an operator in, derived from
 * the broker's own settings: the console signs in against the broker's app
 * registration, so nothing new has to be configured.
 *
 * - the client id is the GUID among `AUTH_AUDIENCE` (v2 tokens carry it as `aud`);
 * - the scope is `<App ID URI>/user_impersonation`, the App ID URI being the
 *   first non-GUID audience, or `api://<client id>` (the portal's default);
 * - the authority is the tenant of `AUTH_TENANT_ID`.
 */
export interface ConsoleSettings {
  authMode: 'entra' | 'disabled';
  /** Absent when `AUTH_MODE=disabled`, or when `AUTH_AUDIENCE` names no client id. */
  signIn?: { clientId: string; authority: string; scopes: string[] };
  /** Why sign-in is unavailable, for the page to say so. */
  signInUnavailable?: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const CONSOLE_SCOPE_NAME = 'user_impersonation';

export function consoleSettings(
  config: Pick<Config, 'AUTH_MODE' | 'AUTH_TENANT_ID' | 'AUTH_AUDIENCE'>,
): ConsoleSettings {
  if (config.AUTH_MODE === 'disabled') return { authMode: 'disabled' };
  const clientId = config.AUTH_AUDIENCE.find((audience) => GUID.test(audience));
  if (clientId === undefined || config.AUTH_TENANT_ID === undefined) {
    return {
      authMode: 'entra',
      signInUnavailable:
        'AUTH_AUDIENCE names no client id (a GUID): add the client id of the broker app registration to AUTH_AUDIENCE',
    };
  }
  const appIdUri =
    config.AUTH_AUDIENCE.find((audience) => !GUID.test(audience)) ?? `api://${clientId}`;
  return {
    authMode: 'entra',
    signIn: {
      clientId,
      authority: `https://login.microsoftonline.com/${config.AUTH_TENANT_ID}`,
      scopes: [`${appIdUri.replace(/\/+$/, '')}/${CONSOLE_SCOPE_NAME}`],
    },
  };
}

let cached: ConsoleSettings | undefined;

/** The process's console settings, from the environment the broker was configured with. */
export function processConsoleSettings(): ConsoleSettings {
  cached ??= consoleSettings(loadConfig());
  return cached;
}
