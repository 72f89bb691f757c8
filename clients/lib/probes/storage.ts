import { printable } from '../../../src/contract/printable';
import type { DataPlaneEndpoint } from '../data-plane-endpoint';
import { CredentialError, VaultRefusedError } from '../errors';
import type { Probe } from './probe';

/**
 * The Storage probe: `GET <blob endpoint>?comp=list&maxresults=1` with a token for
 * `https://storage.azure.com/.default`. 403 `AuthorizationFailure` is the firewall (or disabled
 * public access: Azure answers both alike); 200, 403 `AuthorizationPermissionMismatch` (no Storage
 * Blob Data role) or any other 403 came from past it; 429 and 5xx are probed again, any other
 * 4xx (no such endpoint) stops the wait. NOTE: the refusal does not name the
 * address the account saw, so a lease for the wrong address shows only as a wait that times out.
 */

/** A version that accepts bearer tokens (2017-11-09 and later do). */
export const STORAGE_API_VERSION = '2024-11-04';

/** The error code: the `x-ms-error-code` header, else the body's `<Code>`. */
async function errorCode(response: Response): Promise<string> {
  const header = response.headers.get('x-ms-error-code');
  if (header) {
    await response.body?.cancel();
    return header;
  }
  const text = await response.text().catch(() => '');
  return /<Code>([^<]{1,100})<\/Code>/.exec(text)?.[1] ?? '';
}

function probeUrl(endpoint: string): string {
  const url = new URL(endpoint.endsWith('/') ? endpoint : `${endpoint}/`);
  url.search = '?comp=list&maxresults=1';
  return url.toString();
}

export function storageProbe(endpoint: DataPlaneEndpoint, doFetch: typeof fetch): Probe {
  const url = probeUrl(endpoint.uri);
  return async (token, signal) => {
    const response = await doFetch(url, {
      headers: { Authorization: `Bearer ${token}`, 'x-ms-version': STORAGE_API_VERSION },
      signal,
    });
    if (response.ok) {
      await response.body?.cancel();
      return { outcome: 'through' };
    }
    const code = await errorCode(response);
    const last = printable(`${response.status} ${code}`.trim());
    if (response.status === 401) {
      throw new CredentialError(
        `the storage account refused the data-plane token (401 ${printable(code)}): set ` +
          `KV_LEASE_VAULT_TOKEN to a token for Storage, or sign in with an identity that ` +
          `can get one${endpoint.scope ? ` (scope ${endpoint.scope})` : ''}`,
      );
    }
    if (response.status === 403 && code === 'AuthorizationFailure') {
      return { outcome: 'refused', last };
    }
    if (response.status === 429 || response.status >= 500) return { outcome: 'retry', last };
    // AuthorizationPermissionMismatch, or any other 403: an answer from past the firewall.
    if (response.status === 403) return { outcome: 'through' };
    // NOTE: a 400 or 404 says the probe itself is wrong (no such endpoint, a header refused),
    // not that the firewall let it in: permanent, and said at once.
    throw new VaultRefusedError(
      `the storage account answered ${last} to ${url}: is ${endpoint.uri} the account's blob endpoint?`,
    );
  };
}
