import { printable } from '../../../src/contract/printable';
import type { DataPlaneEndpoint } from '../data-plane-endpoint';
import { CredentialError, VaultRefusedError } from '../errors';
import type { Probe } from './probe';

/**
 * The Key Vault probe: `GET {vaultUri}secrets?maxresults=1` with a vault token. 403
 * ForbiddenByFirewall (its message names the client address) is the firewall; a 200, or a 403 of
 * another kind (no RBAC role, no access policy), came from past it.
 */

interface VaultAnswer {
  code?: string;
  innerCode?: string;
  message?: string;
}

async function readVaultError(response: Response): Promise<VaultAnswer> {
  try {
    const body = (await response.json()) as {
      error?: { code?: unknown; message?: unknown; innererror?: { code?: unknown } };
    };
    const error = body.error ?? {};
    return {
      ...(typeof error.code === 'string' ? { code: error.code } : {}),
      ...(typeof error.innererror?.code === 'string' ? { innerCode: error.innererror.code } : {}),
      ...(typeof error.message === 'string' ? { message: error.message } : {}),
    };
  } catch {
    return {};
  }
}

/** `Client address: a.b.c.d` in a Key Vault firewall refusal. */
export function clientAddressOf(message: string | undefined): string | undefined {
  return message === undefined
    ? undefined
    : /Client address:\s*([0-9A-Fa-f.:]+[0-9A-Fa-f])/.exec(message)?.[1];
}

function probeUrl(vaultUri: string): string {
  const base = vaultUri.endsWith('/') ? vaultUri : `${vaultUri}/`;
  return new URL('secrets?api-version=7.5&maxresults=1', base).toString();
}

export function keyVaultProbe(endpoint: DataPlaneEndpoint, doFetch: typeof fetch): Probe {
  const url = probeUrl(endpoint.uri);
  return async (token, signal) => {
    const response = await doFetch(url, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      signal,
    });
    if (response.ok) {
      await response.body?.cancel();
      return { outcome: 'through' };
    }
    const answer = await readVaultError(response);
    const last = printable(`${response.status} ${answer.innerCode ?? answer.code ?? ''}`.trim());
    if (response.status === 401) {
      throw new CredentialError(
        `the vault refused the data-plane token (401 ${printable(answer.code ?? '')}): set ` +
          `KV_LEASE_VAULT_TOKEN to a token for the vault, or sign in with an identity that ` +
          `can get one${endpoint.scope ? ` (scope ${endpoint.scope})` : ''}`,
      );
    }
    if (response.status === 403) {
      if (answer.innerCode === 'ForbiddenByConnection') {
        throw new VaultRefusedError(
          `the vault's public network access is disabled: no firewall rule can open it (${printable(answer.message ?? '')})`,
        );
      }
      const firewall =
        answer.innerCode === 'ForbiddenByFirewall' ||
        /Client address is not authorized/i.test(answer.message ?? '');
      // Any other 403 (no RBAC role, access policy) came from past the firewall: we are in.
      if (!firewall) return { outcome: 'through' };
      const seen = clientAddressOf(answer.message);
      return { outcome: 'refused', last, ...(seen ? { clientAddress: seen } : {}) };
    }
    if (response.status === 429 || response.status >= 500) return { outcome: 'retry', last };
    throw new VaultRefusedError(
      `the vault answered ${response.status} ${printable(answer.code ?? '')} to ${url}: is ${endpoint.uri} the right vault URI?`,
    );
  };
}
