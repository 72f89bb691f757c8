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
const count = (path: unknown) => {
  if (typeof path === 'string') read.add(path);
};
const readFileSync = fs.readFileSync;
const openSync = fs.openSync;
fs.readFileSync = ((path: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
  count(path);
  return (readFileSync as (...args: unknown[]) => unknown)(path, ...rest);
}) as typeof fs.readFileSync;
fs.openSync = ((path: fs.PathLike, ...rest: unknown[]) => {
  count(path);
  return (openSync as (...args: unknown[]) => number)(path, ...rest);
}) as typeof fs.openSync;

const started = performance.now();
const app = loadApp(entry);
const ms = performance.now() - started;
fs.readFileSync = readFileSync;
fs.openSync = openSync;
process.stdout.write(
  `${JSON.stringify({
    ms,
    files: read.size,
    scripts: [...read].filter((path) => /\.(?:c?js|json|node)$/.test(path)).length,
    functions: app.functions.length,
  })}\n`,
);
