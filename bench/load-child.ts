import fs from 'node:fs';

import type * as Functions from '@azure/functions';

import { loadApp } from '../dev/local/app-loader';

/**
 * `node dist/bench/load-child.js <entry>`: loads a Function App entry as the
 * host's worker does (app-loader: `@azure/functions-core` answered, so the app
 * registers its functions) in a fresh process, and prints one JSON line: the
 * time the load took and the files read meanwhile. A file counts when Node's
 * module loader or the app reads it through `fs` (the loader compiles every
 * module from `fs.readFileSync`); package.json look-ups that Node does
 * internally are not seen, so the count is a floor, the same for both layouts.
 * Then it times the first request (see firstRequest).
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

/**
 * Then the first request, as the host would hand it over: GET
 * /api/openapi.json (no token needed; it builds the services and the
 * document), timed from the call to its answer. With a registration-only
 * entry this is where the app's other half loads. The request and context
 * objects are made before the clock starts, from the repository's own
 * `@azure/functions` (the handlers read them as plain objects).
 */
async function firstRequest(): Promise<{ firstMs: number; firstStatus: number }> {
  // A require here, not an import at the top: loading it before the measure would warm the
  // modules it shares with the app (node:http above all).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { HttpRequest, InvocationContext } = require('@azure/functions') as typeof Functions;
  const openApi = app.functions.find((f) => f.name === 'openApi');
  if (!openApi) throw new Error('the app registers no openApi function');
  const request = new HttpRequest({ method: 'GET', url: 'http://127.0.0.1/api/openapi.json' });
  const context = new InvocationContext({ functionName: 'openApi' });
  const begun = performance.now();
  const response = (await openApi.handler(request, context)) as { status?: number };
  return { firstMs: performance.now() - begun, firstStatus: response.status ?? 200 };
}

void firstRequest().then((first) => {
  process.stdout.write(
    `${JSON.stringify({
      ms,
      // CPU time of the load: what it costs when other processes compete for the cpus.
      cpuMs: (used.user + used.system) / 1000,
      files: read.size,
      scripts: [...read].filter((path) => /\.(?:c?js|json|node)$/.test(path)).length,
      functions: app.functions.length,
      ...first,
    })}\n`,
  );
  // The services the request built keep timers; the measure is taken.
  process.exit(0);
});
