/**
 * CSV of audit entries (RFC 4180: every cell quoted, quotes doubled, CRLF).
 * The audit trail holds text callers wrote: each cell is made printable
 * first (a control character, a line break or a bidi override becomes its
 * escape, `\u001b`), then a cell that a spreadsheet would read as a formula
 * (starting with = + - @) is prefixed with a single quote.
 */
import { printable } from '../src/contract/printable';

const FORMULA_START = /^[=+\-@\t\r]/;

export function csvCell(value: string | number | boolean | undefined | null): string {
  const text = printable(value === undefined || value === null ? '' : String(value));
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
  'kind',
  'ip',
  'leaseId',
  'outcome',
  'detail',
  'invocationId',
] as const;
