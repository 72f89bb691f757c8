import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

import { describe, expect, it } from 'vitest';

/**
 * The GitHub runner runs the action's dist/ as committed, so it must be what
 * the sources build to now: a source change without `npm run build:clients`
 * fails here.
 */
// The build script is an ES module (run by node directly); tests load it with import().
const build = () => import('../../clients/build.mjs');

describe('GitHub action bundle', () => {
  it('When the action is bundled afresh, Then every file equals the committed dist/', async () => {
    const { BUNDLES, bundle } = await build();
    const files = await bundle(BUNDLES.action);
    expect([...files.keys()].map((path) => basename(path)).sort()).toEqual([
      'kv-lease-tds.cjs',
      'kv-lease-tds.cjs.LEGAL.txt',
      'main.cjs',
      'post.cjs',
      'run.cjs',
      'run.cjs.LEGAL.txt',
    ]);
    for (const [path, text] of files) {
      const committed = readFileSync(path, 'utf8');
      expect(committed === text, `${path} is stale: run npm run build:clients`).toBe(true);
    }
  }, 30_000);

  it('When a launcher runs, Then it requires the bundle next to it by a relative, slash-separated path', async () => {
    const { BUNDLES, bundle } = await build();
    const files = await bundle(BUNDLES.action);
    const launchers = [...files].filter(([path]) => /(main|post)\.cjs$/.test(path));
    expect(launchers.map(([, text]) => text.trim().split('\n').pop())).toEqual([
      "require('./run.cjs').main();",
      "require('./run.cjs').post();",
    ]);
  }, 30_000);
});
