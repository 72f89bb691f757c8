import { jwtClaims, rolesOf } from './format';

/**
 * Who the operator is, and how the page gets a token for the API.
 *
 * - `AUTH_MODE=disabled` (npm start): no sign-in, every caller has every role.
 * - Test mode: a token the test put in sessionStorage under `kv-lease.token`
 *   is used as is (MSAL is not loaded); the API validates it like any other.
 * - Otherwise MSAL (authorization code with PKCE, redirect flow, cache in
 *   sessionStorage), loaded as a separate chunk only when it is needed.
 *
 * Roles read from the token shape the page (no release button without
 * Lease.Admin); the API enforces them.
 */

export interface ConsoleSettings {
  authMode: 'entra' | 'disabled';
  signIn?: { clientId: string; authority: string; scopes: string[] };
  signInUnavailable?: string;
}

export interface Session {
  mode: 'disabled' | 'test' | 'entra';
  user: string;
  roles: Set<string>;
  token(): Promise<string | undefined>;
  signOut?: () => void;
}

export const TEST_TOKEN_KEY = 'kv-lease.token';
const ALL_ROLES = ['Lease.Request', 'Lease.Read', 'Lease.Admin'];

export function describeUser(claims: Record<string, unknown> | undefined): string {
  for (const name of ['name', 'preferred_username', 'upn', 'oid']) {
    const value = claims?.[name];
    if (typeof value === 'string' && value !== '') return value;
  }
  return 'signed in';
}

export async function startSession(
  settings: ConsoleSettings,
  askToSignIn: (signIn: () => void) => void,
): Promise<Session | undefined> {
  if (settings.authMode === 'disabled') {
    return {
      mode: 'disabled',
      user: 'local-dev (AUTH_MODE=disabled)',
      roles: new Set(ALL_ROLES),
      token: () => Promise.resolve(undefined),
    };
  }
  const testToken = sessionStorage.getItem(TEST_TOKEN_KEY);
  if (testToken) {
    const claims = jwtClaims(testToken);
    return {
      mode: 'test',
      user: describeUser(claims),
      roles: rolesOf(claims),
      token: () => Promise.resolve(testToken),
      signOut: () => {
        sessionStorage.removeItem(TEST_TOKEN_KEY);
        location.reload();
      },
    };
  }
  if (!settings.signIn) throw new Error(settings.signInUnavailable ?? 'Sign-in is not configured');
  const { msalSession } = await import('./msal');
  return msalSession(settings.signIn, askToSignIn);
}
