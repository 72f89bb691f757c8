import { h, svg } from './dom';
import { KIND_LABELS } from './kinds';
import { countTicks, hourTicks, stepPath } from './scale';
import type { Series, Timeline } from './timeline';

/**
 * The chart of active leases per target over the last 24 hours: an inline
 * SVG the page draws itself (no chart library, nothing fetched), one step
 * line per target, with its axes, a legend and a title and description that
 * say in words what the lines show. Every name from the API reaches it as a
 * text node or a printable attribute (dom.ts).
 */

const WIDTH = 960;
const HEIGHT = 240;
const MARGIN = { left: 44, right: 14, top: 14, bottom: 28 };

/**
 * Line colours, each at least 3:1 against white (WCAG 1.4.11), and dash
 * patterns: a line is told apart by its dash too, not by its colour alone.
 */
const COLOURS = [
  '#0b5cad',
  '#b35900',
  '#1a7f37',
  '#a4161a',
  '#6f42c1',
  '#00758f',
  '#8a5a00',
  '#c2185b',
];
const OTHERS_COLOUR = '#4a5360';
const DASHES = [undefined, '8 4', '3 3', '10 3 3 3'];

export interface ChartData {
  timeline: Timeline;
  /** False when the lease pages were cut short (a cap on pages): the chart says so. */
  complete: boolean;
  /** Lease pages read. */
  pages: number;
}

function styleOf(series: Series, index: number): { stroke: string; dash: string | undefined } {
  return {
    stroke: series.kind === undefined ? OTHERS_COLOUR : (COLOURS[index % COLOURS.length] ?? '#000'),
    dash: DASHES[index % DASHES.length],
  };
}

function clock(at: number): string {
  const date = new Date(at);
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
}

function describe({ timeline, complete, pages }: ChartData): string {
  const minutes = timeline.bucketMs / 60_000;
  const parts = [
    `Peak number of leases active at once in each ${minutes}-minute period, per target, from ${new Date(timeline.start).toISOString()} to ${new Date(timeline.now).toISOString()}.`,
  ];
  if (timeline.series.length === 0) parts.push('No lease was active in that time.');
  for (const series of timeline.series) {
    const kind = series.kind === undefined ? '' : ` (${KIND_LABELS[series.kind]})`;
    parts.push(`${series.name}${kind}: peak ${series.peak}, ${series.current} active now.`);
  }
  if (!complete) parts.push(`Only ${pages} pages of leases were read: leases may be missing.`);
  return parts.join(' ');
}

function swatch(stroke: string, dash: string | undefined): SVGSVGElement {
  return svg(
    'svg',
    { class: 'swatch', viewBox: '0 0 24 10', width: '24', height: '10', 'aria-hidden': 'true' },
    svg('line', {
      x1: '0',
      y1: '5',
      x2: '24',
      y2: '5',
      stroke,
      'stroke-width': '2.5',
      'stroke-dasharray': dash,
    }),
  );
}

/** The chart's figure: the SVG, its legend and what it could not show. */
export function leaseChart(data: ChartData): Element[] {
  const { timeline } = data;
  const span = timeline.end - timeline.start;
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xAt = (at: number) => MARGIN.left + ((at - timeline.start) / span) * plotWidth;
  const { top, ticks } = countTicks(Math.max(0, ...timeline.series.map((s) => s.peak)));
  const yAt = (count: number) => MARGIN.top + plotHeight - (count / top) * plotHeight;
  const bottom = MARGIN.top + plotHeight;

  const grid = ticks.map((tick) =>
    svg(
      'g',
      { class: 'y-tick' },
      svg('line', {
        x1: String(MARGIN.left),
        x2: String(WIDTH - MARGIN.right),
        y1: String(yAt(tick)),
        y2: String(yAt(tick)),
      }),
      svg('text', { x: String(MARGIN.left - 6), y: String(yAt(tick) + 4) }, String(tick)),
    ),
  );
  const hours = hourTicks(timeline.start, timeline.end, 3, (at) => new Date(at).getHours());
  const xTicks = hours.map((at) =>
    svg(
      'g',
      { class: 'x-tick' },
      svg('line', {
        x1: String(xAt(at)),
        x2: String(xAt(at)),
        y1: String(bottom),
        y2: String(bottom + 5),
      }),
      svg('text', { x: String(xAt(at)), y: String(bottom + 18) }, clock(at)),
    ),
  );
  const lines = timeline.series.map((series, index) => {
    const { stroke, dash } = styleOf(series, index);
    return svg('path', {
      class: 'line',
      d: stepPath(
        series.counts,
        (bucket) => xAt(timeline.start + bucket * timeline.bucketMs),
        yAt,
        xAt(timeline.now),
      ),
      stroke,
      'stroke-dasharray': dash,
      'data-target': series.name,
      'data-peak': String(series.peak),
      'data-current': String(series.current),
    });
  });

  const chart = svg(
    'svg',
    {
      class: 'chart',
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: 'img',
      'aria-labelledby': 'chart-title chart-desc',
      'data-buckets': String(timeline.series[0]?.counts.length ?? span / timeline.bucketMs),
      'data-bucket-minutes': String(timeline.bucketMs / 60_000),
    },
    svg('title', { id: 'chart-title' }, 'Active leases per target, last 24 hours'),
    svg('desc', { id: 'chart-desc' }, describe(data)),
    svg('g', { class: 'grid' }, ...grid),
    svg('line', {
      class: 'axis',
      x1: String(MARGIN.left),
      x2: String(MARGIN.left),
      y1: String(MARGIN.top),
      y2: String(bottom),
    }),
    svg('line', {
      class: 'axis',
      x1: String(MARGIN.left),
      x2: String(WIDTH - MARGIN.right),
      y1: String(bottom),
      y2: String(bottom),
    }),
    svg('g', { class: 'x-axis' }, ...xTicks),
    svg(
      'text',
      { class: 'y-label', x: String(MARGIN.left + 4), y: String(MARGIN.top - 3) },
      'leases at once',
    ),
    svg('g', { class: 'lines' }, ...lines),
  );

  const legend = h(
    'ul',
    { class: 'chart-legend', 'aria-label': 'Targets in the chart' },
    ...timeline.series.map((series, index) => {
      const { stroke, dash } = styleOf(series, index);
      return h(
        'li',
        { 'data-target': series.name },
        swatch(stroke, dash),
        h('span', { class: 'name' }, series.name),
        series.kind === undefined
          ? undefined
          : h('span', { class: 'kind' }, KIND_LABELS[series.kind]),
        h('span', { class: 'numbers' }, `peak ${series.peak}, now ${series.current}`),
      );
    }),
  );

  const notes: string[] = [];
  if (timeline.series.length === 0) notes.push('No lease was active in the last 24 hours.');
  if (!data.complete) {
    notes.push(
      `The chart stopped after ${data.pages} pages of leases (${timeline.leases} in the last 24 hours): leases may be missing.`,
    );
  }
  if (timeline.skipped > 0) {
    notes.push(
      `${timeline.skipped} lease${timeline.skipped === 1 ? '' : 's'} with unreadable times left out.`,
    );
  }
  const note = h(
    'p',
    { class: data.complete ? 'chart-note' : 'chart-note warning' },
    notes.join(' '),
  );
  return [chart, legend, ...(notes.length > 0 ? [note] : [])];
}
