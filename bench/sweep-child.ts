import { constants, PerformanceObserver } from 'node:perf_hooks';

import { createServices } from '../src/app/composition';
import { loadConfig } from '../src/app/config';
import { silentLogger } from '../src/domain/logger';
import { peakRssMb } from './harness';

/**
 * `node dist/bench/sweep-child.js`: one sweep of every vault in BROKER_VAULTS,
 * in its own process (configured by the environment exactly as the broker is)
 * so that its memory can be measured. Prints one `{"ready":true,...}` line with
 * the result, then waits for SIGTERM so the parent can read /proc/<pid>/status.
 *
 * Besides the peak RSS it reports where the memory went: the heap in use at
 * its peak (live objects and garbage not yet collected) and right after each
 * full collection (what the sweep really holds), so a peak can be told apart
 * from a leak or from data held at once.
 */

const mb = (bytes: number) => Math.round(bytes / 1e5) / 10;

const heap = { peakUsed: 0, peakTotal: 0, liveAfterFullGc: 0, fullGcs: 0 };
setInterval(() => {
  const { heapUsed, heapTotal } = process.memoryUsage();
  heap.peakUsed = Math.max(heap.peakUsed, heapUsed);
  heap.peakTotal = Math.max(heap.peakTotal, heapTotal);
}, 10).unref();
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const { kind } = (entry as unknown as { detail?: { kind?: number } }).detail ?? {};
    if (kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue;
    heap.fullGcs += 1;
    heap.liveAfterFullGc = Math.max(heap.liveAfterFullGc, process.memoryUsage().heapUsed);
  }
}).observe({ entryTypes: ['gc'] });

async function main(): Promise<void> {
  const services = createServices(loadConfig(), { logger: silentLogger });
  const started = performance.now();
  const result = await services.sweep();
  const sweepMs = performance.now() - started;
  const heapMb = {
    peakUsed: mb(heap.peakUsed),
    peakTotal: mb(heap.peakTotal),
    liveAfterFullGc: mb(heap.liveAfterFullGc),
    fullGcs: heap.fullGcs,
  };
  process.stdout.write(
    `${JSON.stringify({ ready: true, pid: process.pid, sweepMs, result, peakRssMb: peakRssMb('self'), heapMb })}\n`,
  );
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
// Keep the process alive until the parent stops it.
setInterval(() => undefined, 60_000);
main().catch((error: unknown) => {
  process.stderr.write(`sweep failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
