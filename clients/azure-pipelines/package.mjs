// Packages the Azure Pipelines task as an extension (.vsix) with tfx-cli,
// offline: the task's bundle is built with esbuild into a staging folder
// next to task.json and the manifest, then `tfx extension create` packs it.
// No shell: tfx runs as a node script (works the same on Windows).
//
//   npm run package:ado [-- <output .vsix path>]
//   default output: dist/ado/kv-lease-tasks-<version>.vsix
/* global console, process */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { BUNDLES, bundle } from '../build.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const require = createRequire(import.meta.url);

/**
 * The extension's files in `dir`: the manifest, its overview, and task/ with
 * task.json and the bundle (dist/run.js and the handlers' launchers).
 * Returns the task folder, which the tests also run as the agent would.
 */
export async function stage(dir) {
  mkdirSync(join(dir, 'task'), { recursive: true });
  copyFileSync(join(HERE, 'vss-extension.json'), join(dir, 'vss-extension.json'));
  copyFileSync(join(HERE, 'overview.md'), join(dir, 'overview.md'));
  copyFileSync(join(HERE, 'task', 'task.json'), join(dir, 'task', 'task.json'));
  const built = join(HERE, 'task');
  for (const [path, text] of await bundle(BUNDLES.task)) {
    const target = join(dir, 'task', relative(built, path));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text);
  }
  return join(dir, 'task');
}

/** Builds the .vsix at `output` and returns its path. */
export async function packageExtension(output) {
  const manifest = JSON.parse(readFileSync(join(HERE, 'vss-extension.json'), 'utf8'));
  const target = resolve(
    output ?? join(ROOT, 'dist', 'ado', `${manifest.id}-${manifest.version}.vsix`),
  );
  const staging = mkdtempSync(join(tmpdir(), 'kv-lease-vsix-'));
  try {
    await stage(staging);
    mkdirSync(dirname(target), { recursive: true });
    const tfx = join(dirname(require.resolve('tfx-cli/package.json')), '_build', 'tfx-cli.js');
    execFileSync(
      process.execPath,
      [
        tfx,
        'extension',
        'create',
        '--root',
        staging,
        '--manifest-globs',
        'vss-extension.json',
        '--output-path',
        target,
        '--no-prompt',
        '--no-color',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TFX_TRACE: '' } },
    );
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return target;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = await packageExtension(process.argv[2]);
  console.log(`${relative(process.cwd(), path)}`);
}
