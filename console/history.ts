import type { Lease, Page } from '../src/contract';
import { query } from './format';

/**
 * The leases of the last 24 hours for the chart, read target by target with
 * `GET /api/leases?status=all&vault=<name>`, within a budget of pages.
 *
 * NOTE: why not one unfiltered `status=all` list: the broker walks it target
 * by target (each target's live leases, then its history, newest first), so a
 * cap on pages would drop whole targets, the last configured ones, and every
 * page of history ever kept would be read. Per target, the reading stops at
 * the first page with no lease in the window (history is newest first: older
 * pages hold older leases), and the first page of every target is read before
 * any second page. A lease created long before the window and renewed into
 * it may lie past that page and be missed.
 */

export interface History {
  leases: Lease[];
  /** Pages read, every target together. */
  pages: number;
  /** False when the budget ran out with pages still to read. */
  complete: boolean;
}

/** Pages asked at once: a few, not every target's at the same instant. */
const AT_ONCE = 4;

export async function recentLeases(
  get: (path: string) => Promise<Page<Lease>>,
  targets: readonly string[],
  since: number,
  options: { maxPages: number; pageSize: number },
): Promise<History> {
  const inWindow = (lease: Lease) => Date.parse(lease.endedAt ?? lease.expiresAt) > since;
  // With no target known (the targets list failed), one list of every target is better than none.
  const pending: string[] =
    targets.length > 0
      ? targets.map((vault) =>
          query('/api/leases', { status: 'all', vault, $top: String(options.pageSize) }),
        )
      : [query('/api/leases', { status: 'all', $top: String(options.pageSize) })];
  const leases: Lease[] = [];
  let pages = 0;
  while (pending.length > 0 && pages < options.maxPages) {
    const batch = pending.splice(0, Math.min(AT_ONCE, options.maxPages - pages));
    const answers = await Promise.all(batch.map(get));
    pages += batch.length;
    for (const answer of answers) {
      leases.push(...answer.value);
      if (answer.nextLink !== undefined && answer.value.some(inWindow))
        pending.push(answer.nextLink);
    }
  }
  return { leases, pages, complete: pending.length === 0 };
}
