import fs from 'node:fs';

import { loadApp } from '../dev/local/app-loader';

/**
 * `node dist/bench/load-child.js <entry>`: loads a Function App entry as the
 * host's worker does (app-loader: `@azure/functions-core` answered, so the app
 * registers its functions) in a fresh process, and prints one JSON line: the
 * time the load took and the files read meanwhile. A file counts when Node's
 * module loader or the app reads it through `fs` (the loader compiles every
 * module from `fs.readFileSync`); package.json look-ups that Node does
 * internally are not seen, so the count is a floor, the same for both layouts.
 */

const entry = process.argv[2];
if (!entry) {
  process.stderr.write('usage: load-child.js <entry file>\n');
  process.exit(2);
}

const read = new Set<string>();
// The fs module object, written to: Node's module loader calls fs.readFileSync through it.
const patchable = fs as unknown as Record<
  'readFileSync' | 'openSync',
  (...args: unknown[]) => unknown
>;
const originals = { readFileSync: patchable.readFileSync, openSync: patchable.openSync };
for (const name of ['readFileSync', 'openSync'] as const) {
  const original = originals[name];
  patchable[name] = (path: unknown, ...rest: unknown[]) => {
    if (typeof path === 'string') read.add(path);
    return original(path, ...rest);
  };
}

const started = performance.now();
const cpu = process.cpuUsage();
const app = loadApp(entry);
const ms = performance.now() - started;
const used = process.cpuUsage(cpu);
Object.assign(patchable, originals);
process.stdout.write(
  `${JSON.stringify({
    ms,
    // CPU time of the load: what it costs when other processes compete for the cpus.
    cpuMs: (used.user + used.system) / 1000,
    files: read.size,
    scripts: [...read].filter((path) => /\.(?:c?js|json|node)$/.test(path)).length,
    functions: app.functions.length,
  })}\n`,
);
