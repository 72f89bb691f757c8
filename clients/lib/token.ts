import type { TokenProvider } from './client';
import { CredentialError } from './errors';

export const DEFAULT_BROKER_SCOPE = 'api://kv-lease/.default';
export const DEFAULT_TOKEN_ENV = 'KV_LEASE_TOKEN';
export const DEFAULT_VAULT_TOKEN_ENV = 'KV_LEASE_VAULT_TOKEN';

/** Renew a cached token this long before it expires. */
const REFRESH_MARGIN_MS = 2 * 60_000;

interface Credential {
  getToken(scope: string): Promise<{ token: string; expiresOnTimestamp: number } | null>;
}

let credential: Promise<Credential> | undefined;

/**
 * DefaultAzureCredential (az login, workload identity, managed identity, ...), created once and
 * loaded only when needed: `kv-lease --version` or a token from the environment never pay for it.
 */
function defaultCredential(): Promise<Credential> {
  credential ??= import('@azure/identity').then(
    ({ DefaultAzureCredential }) => new DefaultAzureCredential() as Credential,
  );
  return credential;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split('\n').find((line) => line.trim() !== '') ?? '').trim().slice(0, 240);
}

/**
 * A token for `scope`: the environment variable `envVar` when set (default KV_LEASE_TOKEN), else
 * DefaultAzureCredential. Cached until two minutes before it expires. The token is never part of
 * an error message; `onToken` sees each new token (a pipeline masks it there).
 *
 * With no `scope` (a data plane whose host implies none: a configured URI of an unknown host, the
 * local emulator), only `envVar` can give a token: no Azure credential is asked for one, since
 * it would be a token for some real resource, sent to that host.
 */
export function tokenProvider(options: {
  scope: string | undefined;
  envVar?: string;
  env?: NodeJS.ProcessEnv;
  onToken?: (token: string) => void;
  /** For messages when there is no scope: where the token would go. */
  destination?: string;
}): TokenProvider {
  const envVar = options.envVar ?? DEFAULT_TOKEN_ENV;
  const env = options.env ?? process.env;
  let cached: { token: string; expiresAt: number } | undefined;
  return async () => {
    const fromEnv = env[envVar]?.trim();
    if (fromEnv) {
      if (cached?.token !== fromEnv) options.onToken?.(fromEnv);
      cached = { token: fromEnv, expiresAt: Number.POSITIVE_INFINITY };
      return fromEnv;
    }
    if (cached && cached.expiresAt - REFRESH_MARGIN_MS > Date.now()) return cached.token;
    if (options.scope === undefined) {
      throw new CredentialError(
        `no token for ${options.destination ?? 'this host'}: its host implies no Azure token ` +
          `scope, so no Azure credential is asked for one; set ${envVar} to a token for it ` +
          `(any text for the local emulator)`,
      );
    }
    const scope = options.scope;
    let token: { token: string; expiresOnTimestamp: number } | null;
    try {
      token = await (await defaultCredential()).getToken(scope);
    } catch (error) {
      throw new CredentialError(
        `no credential for ${options.scope}: set ${envVar} to a token, or sign in (az login, ` +
          `managed identity, workload identity); DefaultAzureCredential said: ${firstLine(error)}`,
        { cause: error },
      );
    }
    if (!token) {
      throw new CredentialError(
        `no token for ${options.scope}: set ${envVar}, or sign in with az login`,
      );
    }
    options.onToken?.(token.token);
    cached = { token: token.token, expiresAt: token.expiresOnTimestamp };
    return token.token;
  };
}
