/**
 * The geometry of the console's chart, pure (unit-tested in
 * test/console/timeline.test.ts): the y axis' whole-number ticks, the hour
 * ticks of the time axis, and a step line's SVG path.
 */

/** A y axis from 0 for whole counts: a round top at or above `max` and at most about five ticks. */
export function countTicks(max: number): { top: number; ticks: number[] } {
  const wanted = Math.max(1, Math.ceil(max));
  let step = 1;
  for (let scale = 1; ; scale *= 10) {
    const found = [1, 2, 5].map((m) => m * scale).find((s) => Math.ceil(wanted / s) <= 5);
    if (found !== undefined) {
      step = found;
      break;
    }
  }
  const top = Math.ceil(wanted / step) * step;
  const ticks: number[] = [];
  for (let t = 0; t <= top; t += step) ticks.push(t);
  return { top, ticks };
}

/**
 * The whole hours in [start, end] whose local hour is a multiple of `every`
 * (00:00, 03:00, ... for 3). `hourOf` gives an instant's local hour (the
 * page's time zone; a test passes UTC).
 */
export function hourTicks(
  start: number,
  end: number,
  every: number,
  hourOf: (at: number) => number,
): number[] {
  const ticks: number[] = [];
  // Whole hours in UTC are whole hours locally too, but for zones offset by a
  // half or quarter hour: those get their ticks at :30 / :45, still every `every` hours.
  for (let at = Math.ceil(start / 3_600_000) * 3_600_000; at <= end; at += 3_600_000) {
    if (hourOf(at) % every === 0) ticks.push(at);
  }
  return ticks;
}

/**
 * A step line through `counts`: bucket i is a flat segment from x(i) to
 * x(i + 1) at y(counts[i]), joined by vertical steps. `lastX` cuts the last
 * segment short (at now) when given.
 */
export function stepPath(
  counts: readonly number[],
  x: (bucket: number) => number,
  y: (count: number) => number,
  lastX?: number,
): string {
  if (counts.length === 0) return '';
  const r = (n: number) => String(Math.round(n * 10) / 10);
  const parts = [`M${r(x(0))} ${r(y(counts[0] ?? 0))}`];
  counts.forEach((count, i) => {
    const last = i === counts.length - 1;
    // A run of equal counts is one segment: its end is drawn once, where the count changes.
    if (!last && counts[i + 1] === count) return;
    const right = last && lastX !== undefined ? lastX : x(i + 1);
    parts.push(`H${r(right)}`);
    if (!last) parts.push(`V${r(y(counts[i + 1] ?? 0))}`);
  });
  return parts.join('');
}
