import {
  type AuditEntry,
  type Lease,
  printable,
  type TargetSummary,
  type VaultSummary,
  type WhoAmI,
} from '../../lib';

/** `in 19m`, `3h ago`: a timestamp relative to now, for people. */
export function relative(iso: string, now = Date.now()): string {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const seconds = Math.round((at - now) / 1000);
  const magnitude = Math.abs(seconds);
  const text =
    magnitude < 90
      ? `${magnitude}s`
      : magnitude < 90 * 60
        ? `${Math.round(magnitude / 60)}m`
        : magnitude < 36 * 3600
          ? `${Math.round(magnitude / 3600)}h`
          : `${Math.round(magnitude / 86_400)}d`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

/** A cell is one printable line: whatever the broker answered, escaped (a reason with ESC[). */
function cell(value: string, width: number): string {
  return value.length > width ? `${value.slice(0, Math.max(1, width - 1))}…` : value;
}

/**
 * Columns padded to their widest cell (each capped at `max`), two spaces apart; no trailing
 * blanks, so the output is easy to read and to diff.
 */
export function table(headers: string[], cells: string[][], max = 48): string {
  const rows = cells.map((row) => row.map(printable));
  const widths = headers.map((header, column) =>
    Math.min(max, Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length))),
  );
  const line = (values: string[]) =>
    values
      .map((value, column) => cell(value, widths[column] ?? max).padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** One lease as `name  value` lines. */
export function leaseBlock(lease: Lease, now = Date.now()): string {
  const rows: [string, string | undefined][] = [
    ['lease', lease.id],
    ['vault', lease.vault],
    ['kind', lease.kind],
    ['ip', lease.ip],
    ['status', lease.status],
    ['principal', lease.principal],
    ['reason', lease.reason],
    ['created', `${lease.createdAt} (${relative(lease.createdAt, now)})`],
    ['expires', `${lease.expiresAt} (${relative(lease.expiresAt, now)})`],
    ['ended', lease.endedAt && `${lease.endedAt} (${relative(lease.endedAt, now)})`],
    ['vault uri', lease.vaultUri],
    ['endpoint', lease.dataPlane],
    ...(lease.warnings ?? []).map((warning): [string, string] => ['warning', warning]),
  ];
  return rows
    .filter((row): row is [string, string] => row[1] !== undefined && row[1] !== '')
    .map(([name, value]) => `${name.padEnd(10)}${printable(value)}`)
    .join('\n');
}

/** `kv-lease whoami`: the caller as the broker sees it. */
export function whoamiBlock(me: WhoAmI): string {
  const rows: [string, string][] = [
    ['principal', me.principal],
    ['roles', me.roles.length === 0 ? '(none)' : me.roles.join(', ')],
    ['ip', me.ip ?? `none: ${me.ipProblem ?? 'the broker gave no reason'}`],
  ];
  return rows.map(([name, value]) => `${name.padEnd(10)}${printable(value)}`).join('\n');
}

export function leaseTable(leases: Lease[], now = Date.now()): string {
  return table(
    ['ID', 'VAULT', 'IP', 'STATUS', 'EXPIRES', 'PRINCIPAL', 'REASON'],
    leases.map((lease) => [
      lease.id,
      lease.vault,
      lease.ip,
      lease.status,
      lease.status === 'active'
        ? relative(lease.expiresAt, now)
        : `ended ${relative(lease.endedAt ?? lease.expiresAt, now)}`,
      lease.principal,
      lease.reason ?? '',
    ]),
  );
}

export function vaultTable(vaults: VaultSummary[]): string {
  return table(
    ['NAME', 'ACTIVE LEASES', 'BROKER RULES', 'RULES', 'VAULT URI'],
    vaults.map((vault) => [
      vault.name,
      String(vault.activeLeases),
      String(vault.brokerRules),
      `${vault.totalRules}/${vault.maxRules}`,
      vault.vaultUri ?? '',
    ]),
  );
}

/** `kv-lease targets`: every managed target, its kind, and its rules against the kind's limit. */
export function targetTable(targets: TargetSummary[]): string {
  return table(
    ['NAME', 'KIND', 'ACTIVE LEASES', 'RULES', 'HEALTHY', 'DATA PLANE'],
    targets.map((target) => [
      target.name,
      target.kind,
      String(target.activeLeases),
      `${target.totalRules}/${target.maxRules}`,
      target.healthy ? 'yes' : `no${target.lastError ? `: ${target.lastError}` : ''}`,
      target.dataPlane ?? '',
    ]),
  );
}

export function auditTable(entries: AuditEntry[]): string {
  return table(
    ['AT', 'ACTION', 'OUTCOME', 'VAULT', 'IP', 'PRINCIPAL', 'LEASE', 'DETAIL'],
    entries.map((entry) => [
      entry.at,
      entry.action,
      entry.outcome,
      entry.vault ?? '',
      entry.ip ?? '',
      entry.principal,
      entry.leaseId ?? '',
      (entry.detail ?? '').replace(/\s+/g, ' '),
    ]),
    64,
  );
}
