import type { Lease } from '../src/contract';
import { type Kind, leaseKind, leaseTarget } from './kinds';

/**
 * Active leases per target over a window (the last 24 hours), bucketed for
 * the console's chart. Pure: no DOM, no clock (`now` is given), unit-tested
 * in test/console/timeline.test.ts.
 *
 * A lease is active at t when createdAt <= t < (endedAt ?? expiresAt): a
 * released lease stops at its release, any other at its expiry (an expired
 * lease the sweep has not reached yet is not counted past its expiry).
 *
 * NOTE: each bucket holds the PEAK number of leases active at once within it,
 * not a sample at its start: a five-minute pipeline lease inside a 15-minute
 * bucket shows, and a bucket never says fewer leases than were held together.
 */

export interface Series {
  /** The target's name, or `other targets (n)` for the ones folded together. */
  name: string;
  /** Absent for the folded series. */
  kind?: Kind;
  /** Peak active leases per bucket, oldest bucket first. */
  counts: number[];
  peak: number;
  /** Leases active at `now`. */
  current: number;
  /** How many targets this series holds (1, or more for the folded one). */
  targets: number;
}

export interface Timeline {
  /** Start of the first bucket (ms since the epoch). */
  start: number;
  /** End of the last bucket; the last bucket holds `now`. */
  end: number;
  now: number;
  bucketMs: number;
  series: Series[];
  /** Leases that overlap the window (every series together). */
  leases: number;
  /** Leases skipped because their times do not parse or end before they start. */
  skipped: number;
}

export interface TimelineOptions {
  now: number;
  /** The window, ending at the bucket that holds `now`: 24 h by default. */
  spanMs?: number;
  /** 15 minutes by default; must divide spanMs. */
  bucketMs?: number;
  /** At most this many series; the targets with the lowest peaks are folded into one. Default 8. */
  maxSeries?: number;
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
export const QUARTER_HOUR_MS = 15 * 60_000;

interface Interval {
  from: number;
  to: number;
}

/** When the lease is active, as [from, to); undefined when its times make no sense. */
export function activeInterval(
  lease: Pick<Lease, 'createdAt' | 'expiresAt' | 'endedAt'>,
): Interval | undefined {
  const from = Date.parse(lease.createdAt);
  const to = Date.parse(lease.endedAt ?? lease.expiresAt);
  if (Number.isNaN(from) || Number.isNaN(to) || to < from) return undefined;
  return { from, to };
}

/** Peak concurrency per bucket, and the count at `now`, of intervals already clipped to the window. */
function bucketPeaks(
  intervals: readonly Interval[],
  start: number,
  buckets: number,
  bucketMs: number,
  now: number,
): { counts: number[]; current: number } {
  // Each event is one number, 2t for an end and 2t + 1 for a start, sorted as numbers (a typed
  // array sorts natively, many times faster than objects for 20 000 leases): ends sort before
  // starts at the same instant, so [a, b) and [b, c) never count as overlapping.
  const events = new Float64Array(intervals.length * 2);
  intervals.forEach((interval, i) => {
    events[2 * i] = 2 * interval.from + 1;
    events[2 * i + 1] = 2 * interval.to;
  });
  events.sort();
  const timeOf = (event: number) => Math.floor(event / 2);
  const deltaOf = (event: number) => (event % 2 === 1 ? 1 : -1);
  const counts: number[] = [];
  let level = 0;
  let next = 0;
  for (let b = 0; b < buckets; b += 1) {
    const from = start + b * bucketMs;
    const to = Math.min(from + bucketMs, now);
    for (; next < events.length && timeOf(events[next] ?? Infinity) <= from; next += 1) {
      level += deltaOf(events[next] ?? 0);
    }
    let peak = level;
    for (; next < events.length && timeOf(events[next] ?? Infinity) < to; next += 1) {
      level += deltaOf(events[next] ?? 0);
      peak = Math.max(peak, level);
    }
    counts.push(peak);
  }
  const current = intervals.filter((i) => i.from <= now && now < i.to).length;
  return { counts, current };
}

export function activeTimeline(leases: readonly Lease[], options: TimelineOptions): Timeline {
  const { now } = options;
  const spanMs = options.spanMs ?? DAY_MS;
  const bucketMs = options.bucketMs ?? QUARTER_HOUR_MS;
  const maxSeries = Math.max(1, options.maxSeries ?? 8);
  if (!(bucketMs > 0) || spanMs % bucketMs !== 0) {
    throw new Error('the bucket must divide the window');
  }
  const buckets = spanMs / bucketMs;
  const end = Math.floor(now / bucketMs) * bucketMs + bucketMs;
  const start = end - spanMs;

  const byTarget = new Map<string, { kind: Kind; intervals: Interval[] }>();
  let skipped = 0;
  let overlapping = 0;
  for (const lease of leases) {
    const interval = activeInterval(lease);
    if (!interval) {
      skipped += 1;
      continue;
    }
    // Outside the window (ended before it, or created after now): not drawn.
    if (interval.to <= start || interval.from > now || interval.from === interval.to) continue;
    overlapping += 1;
    const name = leaseTarget(lease);
    const entry = byTarget.get(name) ?? { kind: leaseKind(lease), intervals: [] };
    entry.intervals.push({ from: Math.max(interval.from, start), to: interval.to });
    byTarget.set(name, entry);
  }

  const all = [...byTarget].map(([name, { kind, intervals }]) => ({
    name,
    kind,
    intervals,
    ...bucketPeaks(intervals, start, buckets, bucketMs, now),
  }));
  const ranked = all
    .map((s) => ({ ...s, peak: Math.max(0, ...s.counts) }))
    .sort((a, b) => b.peak - a.peak || b.current - a.current || a.name.localeCompare(b.name));
  const kept = ranked.length > maxSeries ? ranked.slice(0, maxSeries - 1) : ranked;
  const folded = ranked.slice(kept.length);
  // Shown by name, so a target keeps its place and colour from one refresh to the next.
  const series: Series[] = [...kept]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((s) => ({
      name: s.name,
      kind: s.kind,
      counts: s.counts,
      peak: s.peak,
      current: s.current,
      targets: 1,
    }));
  if (folded.length > 0) {
    // The folded series is the peak of their leases together, not a sum of peaks.
    const together = bucketPeaks(
      folded.flatMap((s) => s.intervals),
      start,
      buckets,
      bucketMs,
      now,
    );
    series.push({
      name: `other targets (${folded.length})`,
      counts: together.counts,
      peak: Math.max(0, ...together.counts),
      current: together.current,
      targets: folded.length,
    });
  }
  return { start, end, now, bucketMs, series, leases: overlapping, skipped };
}
