// `npm run build` (after tsc and the console): bundles the Function App with
// esbuild into dist/app/index.js, the file package.json "main" names and the
// Functions host loads. The SDKs are inside it, so a cold start compiles one
// file instead of hundreds (each a round trip on the platform's file share),
// and the package azd ships is this bundle, dist/console, host.json and
// package.json: no node_modules, no remote build (see infra/README.md).
//
// `@azure/functions-core` stays external: it is no package but the Node.js
// worker's own module, which `@azure/functions` requires to register the
// functions (outside the worker it falls back to a "test mode" that registers
// nothing). The local runner (dev/local/app-loader.ts) provides a stand-in.
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const APP_DIR = join(root, 'dist', 'app');

export async function buildApp() {
  rmSync(APP_DIR, { recursive: true, force: true });
  mkdirSync(APP_DIR, { recursive: true });
  const result = await build({
    entryPoints: { index: join(root, 'src', 'functions', 'index.ts') },
    outdir: APP_DIR,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: ['node20'],
    external: ['@azure/functions-core'],
    // Whitespace and syntax only: names stay, so a stack trace in the host's log still reads.
    minifyWhitespace: true,
    minifySyntax: true,
    // Some SDKs ship ESM and CommonJS builds: take the CommonJS "main" the tsc layout used.
    mainFields: ['main', 'module'],
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
  });
  // What went in, for a look at what makes the bundle big (not shipped: see .funcignore).
  writeFileSync(join(root, 'dist', 'app-meta.json'), JSON.stringify(result.metafile));
  const file = join(APP_DIR, 'index.js');
  return { file: relative(root, file), bytes: statSync(file).size };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildApp();
}
