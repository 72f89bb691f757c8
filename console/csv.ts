/**
 * CSV of audit entries (RFC 4180: every cell quoted, quotes doubled, CRLF).
 * A cell that a spreadsheet would read as a formula (starting with = + - @,
 * tab or carriage return) is prefixed with a single quote: the audit trail
 * holds text callers wrote.
 */

const FORMULA_START = /^[=+\-@\t\r]/;

export function csvCell(value: string | number | boolean | undefined | null): string {
  const text = value === undefined || value === null ? '' : String(value);
  const safe = FORMULA_START.test(text) ? `'${text}` : text;
  return `"${safe.replace(/"/g, '""')}"`;
}

export type CsvRow = Readonly<Record<string, string | number | boolean | undefined | null>>;

export function toCsv(columns: readonly string[], rows: readonly CsvRow[]): string {
  const lines = [columns.map(csvCell).join(',')];
  for (const row of rows) lines.push(columns.map((column) => csvCell(row[column])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export const AUDIT_COLUMNS = [
  'at',
  'action',
  'principal',
  'appId',
  'vault',
  'ip',
  'leaseId',
  'outcome',
  'detail',
  'invocationId',
] as const;
