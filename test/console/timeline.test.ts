import { describe, expect, it } from 'vitest';

import { capabilitiesOf } from '../../console/capabilities';
import { recentLeases } from '../../console/history';
import { auditKind, auditTarget, leaseKind, ruleLimit, vaultAsTarget } from '../../console/kinds';
import { countTicks, hourTicks, stepPath } from '../../console/scale';
import { activeInterval, activeTimeline, HOUR_MS, QUARTER_HOUR_MS } from '../../console/timeline';
import { openApiDocument } from '../../src/api/openapi';
import { routes } from '../../src/api/routes';
import type { AuditItem, Lease, Vault } from '../../src/contract';
import { TargetResource } from '../../src/contract';

/** 2026-12-08T12:07:00Z: inside the bucket 12:00-12:15, so the window is 12:15 the day before to 12:15. */
const NOW = Date.parse('2026-12-08T12:07:00.000Z');
const MIN = 60_000;
const at = (ms: number) => new Date(ms).toISOString();

let counter = 0;
function lease(
  target: string,
  from: number,
  to: number,
  extra: Partial<Lease> & { released?: boolean } = {},
): Lease {
  const { released, ...rest } = extra;
  counter += 1;
  return {
    id: `${target}.${String(counter).padStart(24, '0')}`,
    vault: target,
    ip: '52.10.20.30/32',
    status: released ? 'released' : to > NOW ? 'active' : 'expired',
    principal: 'pipeline',
    createdAt: at(from),
    expiresAt: released ? at(to + HOUR_MS) : at(to),
    ...(released ? { endedAt: at(to) } : {}),
    ...rest,
  };
}

const bucketOf = (t: number, start: number) => Math.floor((t - start) / QUARTER_HOUR_MS);

describe('The console chart: active leases per target over 24 hours', () => {
  it('When the window is laid out, then it has 96 quarter-hour buckets ending with the one that holds now', () => {
    const timeline = activeTimeline([], { now: NOW });
    expect(timeline.end).toBe(Date.parse('2026-12-08T12:15:00.000Z'));
    expect(timeline.start).toBe(Date.parse('2026-12-07T12:15:00.000Z'));
    expect(timeline.bucketMs).toBe(QUARTER_HOUR_MS);
    expect(timeline.series).toEqual([]);
    expect(() => activeTimeline([], { now: NOW, bucketMs: 7 * MIN })).toThrow(/divide/);
  });

  it('When a lease was released, then it counts until endedAt, not until its expiry', () => {
    const created = NOW - 3 * HOUR_MS;
    const released = lease('kv-a', created, created + 20 * MIN, { released: true });
    expect(activeInterval(released)).toEqual({ from: created, to: created + 20 * MIN });
    const { series, start } = activeTimeline([released], { now: NOW });
    const counts = series[0]?.counts ?? [];
    const first = bucketOf(created, start);
    // 09:07-09:27 touches the buckets 09:00 and 09:15 only.
    expect(counts.slice(first - 1, first + 3)).toEqual([0, 1, 1, 0]);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(2);
    expect(series[0]?.current).toBe(0);
  });

  it('When leases overlap or follow each other, then a bucket holds the peak held at once, and back-to-back leases count once', () => {
    const base = Date.parse('2026-12-08T08:00:00.000Z');
    const leases = [
      lease('kv-a', base, base + 5 * MIN), // 08:00-08:05
      lease('kv-a', base + 5 * MIN, base + 10 * MIN), // 08:05-08:10, starts as the first ends
      lease('kv-a', base + 16 * MIN, base + 40 * MIN), // 08:16-08:40
      lease('kv-a', base + 20 * MIN, base + 21 * MIN), // 08:20-08:21, inside the one above
      lease('kv-a', base + 29 * MIN, base + 31 * MIN), // 08:29-08:31
    ];
    const { series, start } = activeTimeline(leases, { now: NOW });
    const i = bucketOf(base, start);
    expect(series[0]?.counts.slice(i - 1, i + 4)).toEqual([0, 1, 2, 2, 0]);
    expect(series[0]?.peak).toBe(2);
  });

  it('When leases are still active, then the current count says so and the line reaches now', () => {
    const leases = [
      lease('st-b', NOW - 10 * MIN, NOW + 10 * MIN, { kind: 'storage', target: 'st-b' }),
      lease('st-b', NOW - 2 * MIN, NOW + HOUR_MS, { kind: 'storage', target: 'st-b' }),
      lease('st-b', NOW - 30 * MIN, NOW, { kind: 'storage', target: 'st-b' }), // ends exactly now
    ];
    const { series } = activeTimeline(leases, { now: NOW });
    expect(series).toHaveLength(1);
    expect(series[0]).toMatchObject({ name: 'st-b', kind: 'storage', current: 2, peak: 3 });
    expect(series[0]?.counts.at(-1)).toBe(3);
  });

  it('When a lease started before the window or lies outside it, then only its part inside counts and outside ones are not drawn', () => {
    const leases = [
      lease('kv-a', NOW - 30 * HOUR_MS, NOW - 23 * HOUR_MS), // straddles the start
      lease('kv-old', NOW - 30 * HOUR_MS, NOW - 25 * HOUR_MS), // ended before the window
      lease('kv-later', NOW + MIN, NOW + HOUR_MS), // created after now (a skewed clock)
      { ...lease('kv-bad', NOW, NOW), createdAt: 'yesterday' },
      lease('kv-backwards', NOW - MIN, NOW - 2 * MIN),
    ];
    const timeline = activeTimeline(leases, { now: NOW });
    expect(timeline.series.map((s) => s.name)).toEqual(['kv-a']);
    expect(timeline.series[0]?.counts[0]).toBe(1);
    expect(timeline.leases).toBe(1);
    expect(timeline.skipped).toBe(2);
  });

  it('When a lease has no kind or target, then it is a Key Vault lease named by vault', () => {
    const { series } = activeTimeline([lease('kv-v1', NOW - MIN, NOW + MIN)], { now: NOW });
    expect(series[0]).toMatchObject({ name: 'kv-v1', kind: 'keyvault' });
    expect(leaseKind({})).toBe('keyvault');
  });

  it('When there are more targets than series, then the lowest peaks are folded into one series that is their peak together, not a sum of peaks', () => {
    const leases = [
      lease('a', NOW - 2 * HOUR_MS, NOW + HOUR_MS),
      lease('a', NOW - 2 * HOUR_MS, NOW + HOUR_MS),
      lease('a', NOW - 2 * HOUR_MS, NOW + HOUR_MS),
      lease('b', NOW - 2 * HOUR_MS, NOW + HOUR_MS),
      lease('b', NOW - 2 * HOUR_MS, NOW + HOUR_MS),
      lease('c', NOW - 10 * HOUR_MS, NOW - 9 * HOUR_MS),
      lease('d', NOW - 5 * HOUR_MS, NOW - 4 * HOUR_MS),
    ];
    const { series } = activeTimeline(leases, { now: NOW, maxSeries: 3 });
    expect(series.map((s) => [s.name, s.peak, s.targets])).toEqual([
      ['a', 3, 1],
      ['b', 2, 1],
      ['other targets (2)', 1, 2],
    ]);
    expect(series[2]?.kind).toBeUndefined();
  });
});

describe('The console chart geometry', () => {
  it.each([
    [0, 1, [0, 1]],
    [1, 1, [0, 1]],
    [3, 3, [0, 1, 2, 3]],
    [7, 8, [0, 2, 4, 6, 8]],
    [12, 15, [0, 5, 10, 15]],
    [37, 40, [0, 10, 20, 30, 40]],
    [950, 1000, [0, 200, 400, 600, 800, 1000]],
  ])('When the highest count is %d, then the axis tops at %d with ticks %j', (max, top, ticks) => {
    expect(countTicks(max)).toEqual({ top, ticks });
  });

  it('When hour ticks are asked every 3 hours, then they fall on local hours that are multiples of 3', () => {
    const start = Date.parse('2026-12-07T12:15:00.000Z');
    const utc = hourTicks(start, start + 24 * HOUR_MS, 3, (t) => new Date(t).getUTCHours());
    expect(utc.map((t) => new Date(t).toISOString().slice(11, 16))).toEqual([
      '15:00',
      '18:00',
      '21:00',
      '00:00',
      '03:00',
      '06:00',
      '09:00',
      '12:00',
    ]);
    // UTC+1: local 15:00 is 14:00 UTC.
    const plusOne = hourTicks(
      start,
      start + 24 * HOUR_MS,
      3,
      (t) => (new Date(t).getUTCHours() + 1) % 24,
    );
    expect(new Date(plusOne[0] ?? 0).toISOString().slice(11, 16)).toBe('14:00');
  });

  it('When a step line is drawn, then equal neighbours are one segment, steps are vertical and the last one stops at lastX', () => {
    const x = (i: number) => i * 10;
    const y = (c: number) => 100 - c * 10;
    expect(stepPath([0, 0, 2, 2, 1], x, y)).toBe('M0 100H20V80H40V90H50');
    expect(stepPath([1, 3], x, y, 13.26)).toBe('M0 90H10V70H13.3');
    expect(stepPath([], x, y)).toBe('');
  });
});

describe('The console targets and kinds', () => {
  it('When a v1 broker answers GET /api/vaults, then each vault is a keyvault target that validates as the contract Target', () => {
    const vault: Vault = {
      name: 'kv-a',
      resourceId: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-a',
      activeLeases: 2,
      brokerRules: 2,
      totalRules: 3,
      maxRules: 1000,
      healthy: true,
      lastPassAt: '2026-12-08T12:00:00.000Z',
      vaultUri: 'https://kv-a.vault.azure.net/',
    };
    const target = vaultAsTarget(vault);
    expect(TargetResource.parse(target)).toEqual(target);
    expect(target).toMatchObject({ kind: 'keyvault', dataPlane: vault.vaultUri });
  });

  it('When a target answers no maxRules, then the bar is against its kind limit (contract §4)', () => {
    expect(ruleLimit({ kind: 'sql', maxRules: 0 })).toBe(128);
    expect(ruleLimit({ kind: 'storage', maxRules: 0 })).toBe(400);
    expect(ruleLimit({ kind: 'storage', maxRules: 300 })).toBe(300);
  });

  it('When an audit entry has no kind, then it is about a Key Vault unless it names no target at all', () => {
    const item = (extra: Partial<AuditItem>) =>
      ({ vault: null, ...extra }) as Pick<AuditItem, 'kind' | 'vault' | 'target'>;
    expect(auditKind(item({ vault: 'kv-a' }))).toBe('keyvault');
    expect(auditKind(item({ vault: 'sql-a', target: 'sql-a', kind: 'sql' }))).toBe('sql');
    expect(auditKind(item({}))).toBeUndefined();
    expect(auditTarget(item({ vault: 'kv-a' }))).toBe('kv-a');
    expect(auditTarget(item({}))).toBe('');
  });
});

describe("The console's reading of the broker's OpenAPI document", () => {
  const document = openApiDocument(routes) as { paths: Record<string, any> };

  it("When the document is the broker's own, then kind= is taken by the lease and audit lists, and /targets is declared exactly when the route table has it", () => {
    expect(capabilitiesOf(document)).toEqual({
      targets: routes.some((route) => route.route === 'targets'),
      leaseKindFilter: true,
      auditKindFilter: true,
    });
  });

  it('When the document declares /targets, then the page asks GET /api/targets', () => {
    const grown = { ...document, paths: { ...document.paths, '/targets': { get: {} } } };
    expect(capabilitiesOf(grown)?.targets).toBe(true);
  });

  it('When the document is a v1 one (no kind parameter, no /targets), then kind= is never sent', () => {
    const v1 = structuredClone(document);
    delete v1.paths['/targets'];
    for (const path of ['/leases', '/audit']) {
      v1.paths[path].get.parameters = v1.paths[path].get.parameters.filter(
        (p: { name: string }) => p.name !== 'kind',
      );
    }
    expect(capabilitiesOf(v1)).toEqual({
      targets: false,
      leaseKindFilter: false,
      auditKindFilter: false,
    });
  });

  it('When the answer is not an OpenAPI document, then nothing is known', () => {
    expect(capabilitiesOf('<html>')).toBeUndefined();
    expect(capabilitiesOf(null)).toBeUndefined();
    expect(capabilitiesOf({ paths: { '/leases': { get: { parameters: 'x' } } } })).toEqual({
      targets: false,
      leaseKindFilter: false,
      auditKindFilter: false,
    });
  });
});

describe('The leases the chart reads: target by target, within a budget of pages', () => {
  const since = NOW - 24 * HOUR_MS;
  /** A broker's lists by target: live leases first, then history newest first, `size` a page. */
  function lists(byTarget: Record<string, Lease[]>, size: number) {
    const asked: string[] = [];
    const get = (path: string) => {
      asked.push(path);
      const url = new URL(path, 'http://broker');
      const all = byTarget[url.searchParams.get('vault') ?? ''] ?? [];
      const from = Number(url.searchParams.get('$skiptoken') ?? '0');
      url.searchParams.set('$skiptoken', String(from + size));
      const value = all.slice(from, from + size);
      return Promise.resolve(
        from + size < all.length ? { value, nextLink: `${url.pathname}${url.search}` } : { value },
      );
    };
    return { asked, get };
  }
  const history = (target: string, n: number, newestEndedAgo: number) =>
    Array.from({ length: n }, (_, i) =>
      lease(target, NOW - newestEndedAgo - (i + 1) * HOUR_MS, NOW - newestEndedAgo - i * HOUR_MS, {
        released: true,
      }),
    );

  it("When a target's history goes back further than the window, then reading stops at the first page with nothing in the window", async () => {
    const { asked, get } = lists({ 'kv-a': history('kv-a', 60, 0) }, 10);
    const found = await recentLeases(get, ['kv-a'], since, { maxPages: 20, pageSize: 10 });
    // Pages 1-3 hold leases ended within 24 h (0-29 h ago: page 3 ends 20-29 h ago); page 4 has none.
    expect(asked).toHaveLength(4);
    expect(found).toMatchObject({ pages: 4, complete: true });
    expect(found.leases).toHaveLength(40);
  });

  it('When the budget runs out, then the first page of every target was read first and the result says it is incomplete', async () => {
    const { asked, get } = lists(
      { a: history('a', 50, 0), b: history('b', 50, 0), c: history('c', 5, 0) },
      2,
    );
    const found = await recentLeases(get, ['a', 'b', 'c'], since, { maxPages: 5, pageSize: 2 });
    expect(asked.slice(0, 3).map((p) => new URL(p, 'http://x').searchParams.get('vault'))).toEqual([
      'a',
      'b',
      'c',
    ]);
    expect(asked[0]).toBe('/api/leases?status=all&vault=a&%24top=2');
    expect(found).toMatchObject({ pages: 5, complete: false });
  });

  it('When no target is known, then one list of every target is read', async () => {
    const { asked, get } = lists({ '': [lease('kv-a', NOW - HOUR_MS, NOW + HOUR_MS)] }, 10);
    const found = await recentLeases(get, [], since, { maxPages: 20, pageSize: 10 });
    expect(asked).toEqual(['/api/leases?status=all&%24top=10']);
    expect(found).toMatchObject({ pages: 1, complete: true });
  });
});
