import {
  type AccountInfo,
  InteractionRequiredAuthError,
  LogLevel,
  PublicClientApplication,
} from '@azure/msal-browser';

import { describeUser, type Session } from './auth';
import { jwtClaims, rolesOf } from './format';

/**
 * Entra ID sign-in with MSAL: authorization code with PKCE through a full-page
 * redirect back to `/api/console` (the SPA redirect URI on the broker's app
 * registration), tokens cached in sessionStorage only. MSAL's logger stays
 * off for PII and below errors, so no token reaches the browser console.
 */
export async function msalSession(
  signIn: { clientId: string; authority: string; scopes: string[] },
  askToSignIn: (start: () => void) => void,
): Promise<Session | undefined> {
  const redirectUri = `${location.origin}/api/console`;
  const msal = new PublicClientApplication({
    auth: {
      clientId: signIn.clientId,
      authority: signIn.authority,
      redirectUri,
      postLogoutRedirectUri: redirectUri,
    },
    cache: { cacheLocation: 'sessionStorage' },
    system: { loggerOptions: { piiLoggingEnabled: false, logLevel: LogLevel.Error } },
  });
  await msal.initialize();
  const result = await msal.handleRedirectPromise();
  const account: AccountInfo | undefined =
    result?.account ?? msal.getActiveAccount() ?? msal.getAllAccounts()[0];
  if (!account) {
    askToSignIn(() => void msal.loginRedirect({ scopes: signIn.scopes }));
    return undefined;
  }
  msal.setActiveAccount(account);

  const token = async (): Promise<string> => {
    try {
      return (await msal.acquireTokenSilent({ scopes: signIn.scopes, account })).accessToken;
    } catch (error) {
      if (error instanceof InteractionRequiredAuthError) {
        await msal.acquireTokenRedirect({ scopes: signIn.scopes, account });
      }
      throw error;
    }
  };
  const claims = jwtClaims(await token());
  return {
    mode: 'entra',
    user: account.name ?? account.username ?? describeUser(claims),
    roles: rolesOf(claims),
    token,
    signOut: () => void msal.logoutRedirect({ account }),
  };
}
