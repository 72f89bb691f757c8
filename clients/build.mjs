// Bundles the kv-lease CLI into one self-contained file (commander, the client library and
// @azure/identity inlined) so that `npx` or a tarball install starts fast and needs no
// dependencies. Run by `npm run build:clients` (and so by `npm run build`).
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';

import esbuild from 'esbuild';

const cli = join(import.meta.dirname, 'cli');
const { version } = JSON.parse(readFileSync(join(cli, 'package.json'), 'utf8'));
const outfile = join(cli, 'dist', 'kv-lease.js');

try {
  await esbuild.build({
    entryPoints: [join(cli, 'src', 'bin.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    legalComments: 'linked',
    banner: { js: '#!/usr/bin/env node' },
    define: { KV_LEASE_VERSION: JSON.stringify(version) },
    logLevel: 'warning',
  });
  chmodSync(outfile, 0o755);
} catch {
  // esbuild has printed what went wrong.
  process.exit(1);
}
