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
import process from 'node:process';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const APP_DIR = join(root, 'dist', 'app');

/**
 * Heavy packages the app imports with `import()` on first use only, each
 * bundled into its own file beside the entry, so a cold start does not even
 * parse them: @azure/identity (with MSAL: the managed identity's tokens, first
 * needed by the first Resource Manager or Tables call in Azure) and jose
 * (Entra token validation, first needed by the first authenticated request).
 */
const CHUNKS = { '@azure/identity': 'identity', jose: 'jose' };

const common = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: ['node20'],
  // Minified whole (a third less to parse at each cold start); a source map beside it
  // (not shipped) maps a stack trace from the host's log back to the sources.
  minify: true,
  sourcemap: 'external',
  // Some SDKs ship ESM and CommonJS builds: take the CommonJS "main", as tsc's output did.
  mainFields: ['main', 'module'],
  legalComments: 'eof',
  logLevel: 'warning',
};

/** `import('<chunk package>')` in the app: left as a require of the chunk file beside it. */
const chunksExternal = {
  name: 'chunks',
  setup(builder) {
    const filter = new RegExp(
      `^(${Object.keys(CHUNKS)
        .map((name) => name.replace('/', '\\/'))
        .join('|')})$`,
    );
    builder.onResolve({ filter }, (args) =>
      args.kind === 'dynamic-import'
        ? { path: `./${CHUNKS[args.path]}.js`, external: true }
        : undefined,
    );
  },
};

/**
 * zod's namespace object carries its error messages in 50 languages (some
 * 250 KB the host would parse at every cold start); the app uses English
 * only (zod's default), so the bundle gets the English one alone.
 */
const englishOnly = {
  name: 'zod-english-only',
  setup(builder) {
    builder.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.c?js$/ }, (args) => ({
      contents: args.path.endsWith('.cjs')
        ? 'exports.en = require("./en.cjs");\n'
        : 'export { default as en } from "./en.js";\n',
      loader: 'js',
    }));
  },
};

export async function buildApp() {
  rmSync(APP_DIR, { recursive: true, force: true });
  mkdirSync(APP_DIR, { recursive: true });
  const result = await build({
    ...common,
    entryPoints: { index: join(root, 'src', 'functions', 'index.ts') },
    outdir: APP_DIR,
    external: ['@azure/functions-core'],
    plugins: [chunksExternal, englishOnly],
    // import() of a chunk becomes require(): the chunk is CommonJS, whose export names
    // Node's import() could not see.
    supported: { 'dynamic-import': false },
    metafile: true,
  });
  for (const [name, chunk] of Object.entries(CHUNKS)) {
    await build({
      ...common,
      stdin: { contents: `module.exports = require(${JSON.stringify(name)});`, resolveDir: root },
      outfile: join(APP_DIR, `${chunk}.js`),
    });
  }
  // What went in, for a look at what makes the bundle big (not shipped: see .funcignore).
  writeFileSync(join(root, 'dist', 'app-meta.json'), JSON.stringify(result.metafile));
  const file = join(APP_DIR, 'index.js');
  return { file: relative(root, file), bytes: statSync(file).size };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildApp();
}
