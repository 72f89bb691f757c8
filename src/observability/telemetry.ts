import type { Logger } from '../domain/logger';

/**
 * Operational events with stable names and fields, for the alert rules and
 * the workbook of `infra/monitoring.bicep` (their KQL reads these names and
 * fields, and `test/infra` checks that it reads nothing else).
 *
 * Each event is one log line through the Logger port: the JSON logger writes
 * `{"at", "level", "message": "<event>", "event": "<event>", ...fields}` to
 * stderr, which the Functions host records in Application Insights `traces`;
 * the KQL parses the JSON out of the trace message. Names and fields are a
 * contract with the deployed alerts: add fields, never rename or drop one.
 */
export const TELEMETRY_EVENTS = {
  /** A writer pass completed: the vault matches the store. */
  'kvlease.pass': [
    'vault',
    'outcome', // 'written' (one firewall write) or 'unchanged' (no write needed)
    'durationMs',
    'rules', // ipRules on the vault after the pass
    'maxRules', // Key Vault's limit (1000)
    'brokerRules', // rules the broker owns after the pass
    'activeLeases', // live leases (active or pending) the pass kept
  ],
  /** A writer pass failed; its waiters retry until their deadline, the next sweep retries. */
  'kvlease.pass.failed': [
    'vault',
    'reason', // a firewall failure kind (conflict, throttled, transient, rejected, not-found, timeout) or 'store'
    'message',
    'durationMs',
  ],
  /** The sweep timer's work ended (whatever each vault's outcome). */
  'kvlease.sweep': ['durationMs', 'vaults', 'reconciled', 'failed'],
} as const;

export type TelemetryEvent = keyof typeof TELEMETRY_EVENTS;
type Fields<E extends TelemetryEvent> = Record<(typeof TELEMETRY_EVENTS)[E][number], unknown>;

function emit<E extends TelemetryEvent>(
  logger: Logger,
  event: E,
  fields: Fields<E>,
  level: 'info' | 'warn' = 'info',
): void {
  logger[level](event, { event, ...fields });
}

export function passCompleted(
  logger: Logger,
  fields: Omit<Fields<'kvlease.pass'>, 'durationMs'> & { startedAt: number; endedAt: number },
): void {
  const { startedAt, endedAt, ...rest } = fields;
  emit(logger, 'kvlease.pass', { ...rest, durationMs: endedAt - startedAt });
}

/** `error` is a FirewallError (its `kind` is the reason) or anything else the store threw. */
export function passFailed(
  logger: Logger,
  fields: { vault: string; error: unknown; startedAt: number; endedAt: number },
): void {
  const { error } = fields;
  const kind = (error as { kind?: unknown } | null)?.kind;
  const isFirewall = error instanceof Error && error.name === 'FirewallError';
  emit(
    logger,
    'kvlease.pass.failed',
    {
      vault: fields.vault,
      reason: isFirewall && typeof kind === 'string' ? kind : 'store',
      message: error instanceof Error ? error.message : 'unknown error',
      durationMs: fields.endedAt - fields.startedAt,
    },
    'warn',
  );
}

export function sweepFinished(
  logger: Logger,
  result: { durationMs: number; vaults: number; reconciled: number; failed: unknown[] },
): void {
  emit(logger, 'kvlease.sweep', {
    durationMs: result.durationMs,
    vaults: result.vaults,
    reconciled: result.reconciled,
    failed: result.failed.length,
  });
}
