import { UsageError } from './errors';

const UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Seconds from `1200`, `90s`, `20m`, `1h30m` or `2d`; a UsageError naming `what` otherwise.
 */
export function parseDuration(text: string, what: string): number {
  const input = text.trim().toLowerCase();
  if (/^\d+$/.test(input)) return Number(input);
  const parts = [...input.matchAll(/(\d+)([smhd])/g)];
  if (input === '' || parts.map((part) => part[0]).join('') !== input) {
    throw new UsageError(
      `${what} '${text}' is not a duration: give seconds (1200) or a duration like 20m, 1h30m, 2d`,
    );
  }
  return parts.reduce(
    (sum, [, amount = '0', unit = 's']) => sum + Number(amount) * (UNITS[unit] ?? 1),
    0,
  );
}

/**
 * An ISO 8601 instant from `1h` / `30m` / `2d` (that long ago, from `now`) or an ISO date or
 * date-time (`2026-11-25`, `2026-11-25T10:00:00Z`).
 */
export function parseSince(text: string, now = Date.now()): string {
  const input = text.trim();
  if (/^(\d+[smhd])+$/i.test(input)) {
    return new Date(now - parseDuration(input, '--since') * 1000).toISOString();
  }
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(input)) {
    // A date alone is midnight UTC; a date-time without an offset is taken as UTC too.
    const withZone =
      /T|\s/.test(input) && !/(Z|[+-]\d{2}:?\d{2})$/i.test(input) ? `${input}Z` : input;
    const at = Date.parse(withZone.replace(' ', 'T'));
    if (!Number.isNaN(at)) return new Date(at).toISOString();
  }
  throw new UsageError(
    `--since '${text}' is neither a duration (1h, 30m, 2d) nor an ISO date (2026-11-25T10:00:00Z)`,
  );
}
