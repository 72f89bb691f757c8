import { printable } from '../src/contract/printable';

/**
 * Pure helpers of the console page (no DOM): durations, links and token
 * claims. Unit-tested in test/console/format.test.ts.
 */

/** `1h 02m`, `4m 05s`, `12s`; anything below zero is `0s`. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86_400);
  const hours = Math.floor((total % 86_400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  if (days > 0) return `${days}d ${two(hours)}h`;
  if (hours > 0) return `${hours}h ${two(minutes)}m`;
  if (minutes > 0) return `${minutes}m ${two(seconds)}s`;
  return `${seconds}s`;
}

/**
 * The link a lease reason may become: only an absolute http(s) URL (a
 * pipeline run), never `javascript:`, `data:` or anything relative, and
 * never one with a character that is not printable (a bidi override would
 * make the link read as another address): that reason stays escaped text.
 */
export function safeHttpUrl(text: string | null | undefined): string | undefined {
  if (typeof text !== 'string') return undefined;
  const trimmed = text.trim();
  if (!/^https?:\/\//i.test(trimmed) || /\s/.test(trimmed)) return undefined;
  if (printable(trimmed) !== trimmed) return undefined;
  try {
    const url = new URL(trimmed);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/** The claims of a JWT, read without verifying it: the page only uses them to shape its UI, the API decides. */
export function jwtClaims(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (part === undefined) return undefined;
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return claims !== null && typeof claims === 'object'
      ? (claims as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export function rolesOf(claims: Record<string, unknown> | undefined): Set<string> {
  const roles = claims?.roles;
  return new Set(
    Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [],
  );
}

/** A same-origin path for a `nextLink`: a token is never sent to another origin. */
export function sameOriginPath(link: string, origin: string): string {
  const url = new URL(link, origin);
  return `${url.pathname}${url.search}`;
}

/** A path with query parameters; empty and undefined ones are left out. */
export function query(path: string, params: Record<string, string | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') search.set(name, value);
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}
