import { createServices } from '../src/app/composition';
import { loadConfig } from '../src/app/config';
import { silentLogger } from '../src/domain/logger';
import { peakRssMb } from './harness';

/**
 * `node dist/bench/sweep-child.js`: one sweep of every vault in BROKER_VAULTS,
 * in its own process (configured by the environment exactly as the broker is)
 * so that its memory can be measured. Prints one `{"ready":true,...}` line with
 * the result, then waits for SIGTERM so the parent can read /proc/<pid>/status.
 */
async function main(): Promise<void> {
  const services = createServices(loadConfig(), { logger: silentLogger });
  const started = performance.now();
  const result = await services.sweep();
  const sweepMs = performance.now() - started;
  process.stdout.write(
    `${JSON.stringify({ ready: true, pid: process.pid, sweepMs, result, peakRssMb: peakRssMb('self') })}\n`,
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
