import type { TokenCredential } from '@azure/core-auth';
import { isRestError, type RestError } from '@azure/core-rest-pipeline';

import { FirewallError } from '../ports/target-firewall';

/** How every kind's adapter reaches Resource Manager. */
export interface ArmFirewallOptions {
  endpoint: string;
  credential: TokenCredential;
  /** Retries of the SDK's own policy (429 with Retry-After, 5xx, network). */
  maxRetries?: number;
  /**
   * Extra TLS trust for an in-process test emulator only. Not reachable from
   * configuration: a configured endpoint is trusted through NODE_EXTRA_CA_CERTS.
   */
  tlsCa?: string;
}

const ARM_SCOPE = 'https://management.azure.com/.default';

/**
 * The options of an `@azure/arm-*` client built from `ArmFirewallOptions`:
 * the same endpoint, scope, retries and test trust for every kind.
 */
export function armClientOptions(options: ArmFirewallOptions) {
  return {
    endpoint: options.endpoint,
    // NOTE: the SDK derives the token scope from the endpoint; an emulator
    // or sovereign endpoint still wants the Resource Manager audience.
    credentials: { scopes: [ARM_SCOPE] },
    retryOptions: {
      maxRetries: options.maxRetries ?? 3,
      retryDelayInMs: 200,
      maxRetryDelayInMs: 4000,
    },
    ...(options.tlsCa ? { tlsOptions: { ca: options.tlsCa } } : {}),
  };
}

/** One SDK client per subscription, made on first use. */
export function perSubscription<T>(
  make: (subscriptionId: string) => T,
): (subscriptionId: string) => T {
  const clients = new Map<string, T>();
  return (subscriptionId) => {
    let client = clients.get(subscriptionId);
    if (!client) {
      client = make(subscriptionId);
      clients.set(subscriptionId, client);
    }
    return client;
  };
}

function retryAfterMs(error: RestError): number | undefined {
  const header = error.response?.headers.get('retry-after');
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * Map whatever an `@azure/arm-*` SDK threw to a FirewallError; never leak the
 * SDK's error body. `label` names the target for messages ("the Key Vault").
 */
export function classifyArmError(
  error: unknown,
  signal?: AbortSignal,
  label = 'the target',
): FirewallError {
  if (signal?.aborted || (error instanceof Error && error.name === 'AbortError')) {
    return new FirewallError('timeout', `The write to ${label} did not finish in time`, undefined, {
      cause: error,
    });
  }
  // NOTE: not `instanceof`: an SDK published as CommonJS only (@azure/arm-sql)
  // throws the CommonJS build's RestError, another class than the ESM one imported here.
  if (isRestError(error)) {
    const status = error.statusCode;
    const code = error.code ?? '';
    const text = `${status ?? ''} ${code}`.trim();
    const options = { cause: error, status };
    if (status === 409)
      return new FirewallError('conflict', `Conflict (${code || '409'})`, undefined, options);
    if (status === 429)
      return new FirewallError(
        'throttled',
        'Resource Manager throttled the call',
        retryAfterMs(error),
        options,
      );
    if (status === 404)
      return new FirewallError(
        'not-found',
        `Resource Manager does not know ${label} (${text}): it was deleted, moved or renamed`,
        undefined,
        options,
      );
    if (status === 401 || status === 403)
      return new FirewallError(
        'rejected',
        `Resource Manager refused the broker's identity (${text}): its role on ${label} may have been removed`,
        undefined,
        options,
      );
    if (status !== undefined && status >= 400 && status < 500 && status !== 408) {
      return new FirewallError(
        'rejected',
        `Resource Manager refused the call (${text})`,
        undefined,
        options,
      );
    }
    return new FirewallError(
      'transient',
      `Resource Manager failed (${status ?? error.code ?? 'network'})`,
      retryAfterMs(error),
      options,
    );
  }
  return new FirewallError('transient', 'Resource Manager call failed', undefined, {
    cause: error,
  });
}
