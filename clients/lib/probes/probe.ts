/**
 * One look at a target's data plane, as the shared wait loop (`waitForDataPlane`) runs it until
 * the firewall lets this client in. A probe per kind (keyvault.ts, storage.ts, sql.ts) knows how
 * its data plane says "firewalled"; the loop owns the rest (deadline, pauses, progress, the
 * wrong-address rule, TLS failures, cancel).
 *
 * A probe resolves to what it saw, or throws a permanent error that waiting cannot fix
 * (CredentialError, VaultRefusedError, UntrustedDataPlaneError). Anything else it throws (a
 * network error) is probed again.
 */
export type ProbeAnswer =
  /** The firewall let the request through (whatever the answer past it was). */
  | { outcome: 'through' }
  /** Still firewalled; `clientAddress` when the refusal names the address it saw. */
  | { outcome: 'refused'; last: string; clientAddress?: string }
  /** No verdict (throttled, 5xx): probe again. */
  | { outcome: 'retry'; last: string };

export type Probe = (token: string, signal: AbortSignal) => Promise<ProbeAnswer>;
