// `npm run build` (after tsc): bundles the operator console into dist/console
// with esbuild: app.js (ES module; MSAL is a separate chunk, loaded only when
// Entra sign-in is needed), console.css, index.html and the icon. azd runs
// `npm run build` before it packages the app; dist/console is shipped as built
// (.funcignore) and served from disk by src/console.
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'dist', 'console');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: { app: join(here, 'main.ts'), console: join(here, 'console.css') },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  chunkNames: 'chunk-[hash]',
  legalComments: 'eof',
  logLevel: 'warning',
});
for (const file of ['index.html', 'favicon.svg']) copyFileSync(join(here, file), join(out, file));
