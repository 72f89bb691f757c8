import { readdirSync } from 'node:fs';

import { beforeAll, describe, expect, it } from 'vitest';

import { bicepUnavailable, type Compiled, compileInfra, compileSource } from './compile';
import { readText, repoPath } from './helpers';

/**
 * CI's gate on the templates: every infra/*.bicep builds and lints with the
 * Bicep CLI (restored from NuGet, infra/bicep-cli/) with no error and no
 * warning. The linter runs with infra/bicepconfig.json's settings; a rule
 * may be tuned there only with its reason written beside it.
 */

const unavailable = bicepUnavailable();
if (unavailable) console.warn(`test/infra/compile.test.ts: ${unavailable}`);

const FILES = readdirSync(repoPath('infra'))
  .filter((name) => name.endsWith('.bicep'))
  .sort();

describe.skipIf(unavailable !== undefined)('Bicep compile and lint (infra/*.bicep)', () => {
  let compiled: Compiled;
  beforeAll(async () => {
    compiled = await compileInfra();
  }, 120_000);

  const problems = (command: 'build' | 'lint') => [
    ...compiled[command].diagnostics
      .filter((d) => d.level !== 'Info')
      .map((d) => `${d.file}:${d.line} ${d.level} ${d.code}: ${d.message}`),
    ...compiled[command].other,
  ];

  it('When every file is built, Then each compiles to ARM JSON with no error and no warning', () => {
    // The version pinned in infra/bicep-cli/bicep-cli.csproj is the one that ran.
    const pinned = /Azure\.Bicep\.CommandLine\.linux-x64" Version="\[([\d.]+)\]"/.exec(
      readText('infra/bicep-cli/bicep-cli.csproj'),
    )?.[1];
    expect(compiled.version).toMatch(new RegExp(`^Bicep CLI version ${pinned ?? '?'} `));
    expect(problems('build')).toEqual([]);
    expect(compiled.build.exitCode).toBe(0);
    expect(Object.keys(compiled.templates).sort()).toEqual(
      // Sorted without the extension: 'storage-access.bicep' sorts before 'storage.bicep'.
      FILES.map((name) => name.replace(/\.bicep$/, '')).sort(),
    );
  });

  it('When every file is linted, Then the linter reports no error and no warning', () => {
    expect(problems('lint')).toEqual([]);
    expect(compiled.lint.exitCode).toBe(0);
  });

  it('When main.bicep is compiled, Then no module comes from a registry: every module is in the JSON', () => {
    const source = readText('infra/main.bicep');
    expect(source).not.toMatch(/^module \w+ '(br[:/]|ts[:/])/m);
    const nested = JSON.stringify(compiled.templates.main);
    for (const file of FILES.filter((name) => name !== 'main.bicep')) {
      if (!source.includes(`'${file}'`)) continue;
      // Each module's template is inlined whole: its own parameters appear in the JSON.
      const own = Object.keys(compiled.templates[file.replace(/\.bicep$/, '')]?.parameters ?? {});
      for (const param of own) expect(nested, `${file} ${param}`).toContain(`"${param}"`);
    }
  });

  it('When a Graph property is misspelt or read-only, or a parameter unused, Then the compiler names it (negative)', async () => {
    const broken = readText('infra/app-registration.bicep')
      .replace('identifierUris:', 'identifierUri:')
      .replace("  signInAudience: 'AzureADMyOrg'", "  appId: 'x'")
      .replace('param displayName string', 'param displayName string\nparam unused string');
    const probe = await compileSource('app-registration.bicep', broken);
    const codes = probe.diagnostics.map((d) => `${d.level} ${d.code}`);
    // The Graph types are loaded (an untyped extension would accept anything) and the linter runs.
    expect(codes).toEqual(
      expect.arrayContaining([
        'Warning BCP089', // identifierUri is not a property of Microsoft.Graph/applications
        'Warning BCP073', // appId is read-only
        'Warning no-unused-params',
      ]),
    );
  }, 60_000);
});
