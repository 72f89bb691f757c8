// `npm run build` (after tsc and the console): bundles the Function App with
// esbuild into dist/app/index.js, the file package.json "main" names and the
// Functions host loads, and the chunks beside it. The SDKs are inside them, so
// a cold start compiles three files instead of hundreds (each a round trip on
// the platform's file share): the entry registers the functions and checks
// the configuration (config.js, zod.js), and the first invocation loads the
// rest (handlers.js; see src/functions/index.ts). The package azd ships is
// dist/app, dist/console, host.json and package.json: no node_modules, no
// remote build (see infra/README.md).
//
// `@azure/functions-core` stays external: it is no package but the Node.js
// worker's own module, which `@azure/functions` requires to register the
// functions (outside the worker it falls back to a "test mode" that registers
// nothing). The local runner (dev/local/app-loader.ts) provides a stand-in.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import process from 'node:process';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const APP_DIR = join(root, 'dist', 'app');

/**
 * Packages bundled into a file of their own beside the entry, each required
 * from there by whichever chunk imports them (so one copy is loaded):
 * @azure/identity (with MSAL: the managed identity's tokens, first needed by
 * the first Resource Manager or Tables call in Azure) and jose (Entra token
 * validation, first needed by the first authenticated request), both
 * imported with `import()` on first use; zod, shared by the configuration
 * check at load and the request schemas of the handlers.
 */
const PACKAGE_CHUNKS = { '@azure/identity': 'identity', jose: 'jose', zod: 'zod' };

/**
 * Package chunks built from the package's ES module build: zod's is a fifth
 * smaller than its CommonJS one (245 KB minified), which matters as zod is
 * compiled at every cold start in Azure (the configuration check).
 */
const ESM_CHUNKS = new Set(['zod']);

/**
 * The app's own chunks, by source: the configuration (checked at load in
 * Azure, and by the handlers) and the handlers' half of the app, which the
 * entry requires on the first invocation (src/functions/index.ts).
 */
const APP_CHUNKS = {
  [join(root, 'src', 'app', 'config.ts')]: 'config',
  [join(root, 'src', 'functions', 'handlers.ts')]: 'handlers',
};

/** The table module the entry registers from, replaced by its data (see table.ts). */
const TABLE = join(root, 'src', 'functions', 'table.ts');

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

/**
 * An import of a chunk (package or app module), static, `require` or
 * `import()`: left as a require of the chunk file beside it, except in the
 * chunk's own build.
 */
function chunksExternal(own) {
  return {
    name: 'chunks',
    setup(builder) {
      const packages = new RegExp(
        `^(${Object.keys(PACKAGE_CHUNKS)
          .map((name) => name.replace('/', '\\/'))
          .join('|')})$`,
      );
      builder.onResolve({ filter: packages }, (args) =>
        args.kind === 'entry-point'
          ? undefined
          : { path: `./${PACKAGE_CHUNKS[args.path]}.js`, external: true },
      );
      builder.onResolve({ filter: /^\./ }, (args) => {
        if (args.kind === 'entry-point') return undefined;
        const path = resolve(args.resolveDir, args.path).replace(/\.[cm]?[jt]s$/, '');
        const chunk = APP_CHUNKS[`${path}.ts`];
        return chunk && chunk !== own ? { path: `./${chunk}.js`, external: true } : undefined;
      });
    },
  };
}

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

/** The entry's table module as data: the table the built handlers chunk computes. */
function tableAsData(table) {
  return {
    name: 'table-as-data',
    setup(builder) {
      builder.onLoad({ filter: /[\\/]functions[\\/]table\.ts$/ }, (args) =>
        args.path === TABLE
          ? {
              contents: `export function functionTable() { return ${JSON.stringify(table)}; }\n`,
              loader: 'js',
            }
          : undefined,
      );
    },
  };
}

/**
 * The function table, taken from the handlers chunk just built by the code of
 * table.ts inside it, so the entry registers exactly what the handlers serve.
 * NOTE: in a process of its own with PATH only: loading the chunk runs no
 * request and builds no services, and an Azure-looking environment of the
 * build machine cannot make it check settings the build does not have.
 */
function builtTable() {
  const run = spawnSync(
    process.execPath,
    ['-e', `console.log(JSON.stringify(require('./handlers.js').functionTable()))`],
    { cwd: APP_DIR, env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' },
  );
  if (run.status !== 0) throw new Error(`listing the function table failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

/** One build of app code into dist/app/<name>.js; its metafile. */
async function buildAppFile(name, source, plugins = []) {
  const result = await build({
    ...common,
    entryPoints: { [name]: source },
    outdir: APP_DIR,
    external: ['@azure/functions-core'],
    plugins: [chunksExternal(name), englishOnly, ...plugins],
    // import() of a chunk becomes require(): the chunk is CommonJS, whose export names
    // Node's import() could not see.
    supported: { 'dynamic-import': false },
    metafile: true,
  });
  return result.metafile;
}

export async function buildApp() {
  rmSync(APP_DIR, { recursive: true, force: true });
  mkdirSync(APP_DIR, { recursive: true });
  for (const [name, chunk] of Object.entries(PACKAGE_CHUNKS)) {
    const esm = ESM_CHUNKS.has(name);
    await build({
      ...common,
      stdin: {
        contents: esm
          ? `export * from ${JSON.stringify(name)};`
          : `module.exports = require(${JSON.stringify(name)});`,
        resolveDir: root,
      },
      ...(esm ? { mainFields: ['module', 'main'] } : {}),
      outfile: join(APP_DIR, `${chunk}.js`),
      plugins: [englishOnly],
    });
  }
  const metas = [];
  for (const [source, chunk] of Object.entries(APP_CHUNKS))
    metas.push(await buildAppFile(chunk, source));
  metas.push(
    await buildAppFile('index', join(root, 'src', 'functions', 'index.ts'), [
      tableAsData(builtTable()),
    ]),
  );
  // What went in, for a look at what makes each file big (not shipped: see .funcignore).
  const meta = { inputs: {}, outputs: {} };
  for (const one of metas) {
    Object.assign(meta.inputs, one.inputs);
    Object.assign(meta.outputs, one.outputs);
  }
  writeFileSync(join(root, 'dist', 'app-meta.json'), JSON.stringify(meta));
  const file = join(APP_DIR, 'index.js');
  return { file: relative(root, file), bytes: statSync(file).size };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildApp();
}
