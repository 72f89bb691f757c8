import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { entryPoint } from '../../dev/local/app-loader';
import { functionDefinitions } from '../../src/app/definitions';
import { repoPath } from './helpers';

/**
 * The package azd ships (.funcignore): host.json, package.json, dist/app (the
 * esbuild bundle package.json "main" names) and dist/console. Copied alone
 * into an empty folder (no node_modules anywhere above it), it must load as
 * the host's worker loads it and serve what the route table defines. Needs
 * `npm run build` first (the bundle is built output).
 */

const SHIPPED = ['host.json', 'package.json', 'dist/app', 'dist/console'];

/** Runs `script` with node in `cwd`, with PATH only, and returns its JSON line. */
function node(script: string, cwd: string): unknown {
  const run = spawnSync(process.execPath, ['-e', script], {
    cwd,
    env: { PATH: process.env.PATH ?? '' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').pop() ?? 'null');
}

describe('The Function App package', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kv-lease-package-'));
    for (const path of SHIPPED) cpSync(repoPath(path), join(dir, path), { recursive: true });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('When the worker loads package.json "main" from the package alone, Then every function of the table registers and nothing outside it is required', () => {
    const loader = repoPath('dist', 'dev', 'local', 'app-loader.js');
    const result = node(
      `const Module = require('node:module');
       const loader = require(${JSON.stringify(loader)});
       const outside = [];
       const original = Module._resolveFilename;
       Module._resolveFilename = function (request, ...rest) {
         const found = original.call(this, request, ...rest);
         if (!Module.isBuiltin(found) && !found.startsWith(${JSON.stringify(dir)})) outside.push(found);
         return found;
       };
       const app = loader.loadApp(loader.entryPoint(${JSON.stringify(dir)}));
       console.log(JSON.stringify({
         functions: app.functions.map((f) => [f.kind, f.name, f.kind === 'http' ? f.route : f.schedule, f.kind === 'http' ? [...f.methods].sort() : []]),
         outside,
       }));`,
      dir,
    ) as { functions: [string, string, string, string[]][]; outside: string[] };

    expect(result.outside).toEqual([]);
    const table = functionDefinitions(() => {
      throw new Error('no services needed to list the table');
    }).map((d) => [
      d.kind,
      d.name,
      d.kind === 'http' ? d.route : d.schedule,
      d.kind === 'http' ? d.methods.map(String).sort() : [],
    ]);
    expect(result.functions).toEqual(table);
  });

  it('When the console is asked for from the package, Then the bundled handler serves its page and files from dist/console', () => {
    const loader = repoPath('dist', 'dev', 'local', 'app-loader.js');
    const result = node(
      `const { HttpRequest, InvocationContext } = require(${JSON.stringify(require.resolve('@azure/functions'))});
       const loader = require(${JSON.stringify(loader)});
       const app = loader.loadApp(loader.entryPoint(${JSON.stringify(dir)}));
       const get = (name, url, params) => app.functions.find((f) => f.name === name)
         .handler(new HttpRequest({ method: 'GET', url, params }), new InvocationContext({ functionName: name }));
       Promise.all([
         get('console', 'http://127.0.0.1/api/console', {}),
         get('consoleFile', 'http://127.0.0.1/api/console/favicon.svg', { file: 'favicon.svg' }),
       ]).then(([page, icon]) => console.log(JSON.stringify({
         page: [page.status, String(page.body).slice(0, 200)],
         icon: [icon.status, icon.headers['Content-Type']],
       })));`,
      dir,
    ) as { page: [number, string]; icon: [number, string] };
    expect(result.page[0]).toBe(200);
    expect(result.page[1]).toMatch(/<!doctype html>/i);
    expect(result.icon).toEqual([200, 'image/svg+xml']);
  });

  it('When the bundle loads a chunk on first use, Then each chunk it names is in the package, loads there alone and has what the app takes from it', () => {
    // The chunks the entry names, and those they name in turn.
    const named = new Set<string>();
    const visit = (file: string) => {
      const code = readFileSync(join(dir, 'dist', 'app', file), 'utf8');
      for (const [, chunk] of code.matchAll(/require\("\.\/([\w-]+\.js)"\)/g)) {
        if (chunk === undefined || named.has(chunk)) continue;
        named.add(chunk);
        visit(chunk);
      }
    };
    visit('index.js');
    expect([...named].sort()).toEqual([
      'config.js',
      'handlers.js',
      'identity.js',
      'jose.js',
      'zod.js',
    ]);
    const result = node(
      `const identity = require('./dist/app/identity.js');
       const jose = require('./dist/app/jose.js');
       const zod = require('./dist/app/zod.js');
       const config = require('./dist/app/config.js');
       const handlers = require('./dist/app/handlers.js');
       console.log(JSON.stringify({
         credential: typeof new identity.DefaultAzureCredential().getToken,
         jwks: typeof jose.createRemoteJWKSet,
         verify: typeof jose.jwtVerify,
         zod: typeof zod.z.object,
         config: typeof config.loadConfig,
         grant: handlers.definition('grantLease').kind,
       }));`,
      dir,
    );
    expect(result).toEqual({
      credential: 'function',
      jwks: 'function',
      verify: 'function',
      zod: 'function',
      config: 'function',
      grant: 'http',
    });
  });

  it('When the worker loads the entry, Then only the registrations and the configuration load: the handlers, the SDKs and the schemas of the requests wait for the first invocation', () => {
    const loader = repoPath('dist', 'dev', 'local', 'app-loader.js');
    const result = node(
      `const { HttpRequest, InvocationContext } = require(${JSON.stringify(require.resolve('@azure/functions'))});
       const loader = require(${JSON.stringify(loader)});
       const app = loader.loadApp(loader.entryPoint(${JSON.stringify(dir)}));
       const chunks = () => Object.keys(require.cache)
         .filter((path) => path.startsWith(${JSON.stringify(join(dir, 'dist', 'app'))}))
         .map((path) => path.split(/[\\/]/).pop()).sort();
       const atLoad = chunks();
       app.functions.find((f) => f.name === 'console')
         .handler(new HttpRequest({ method: 'GET', url: 'http://127.0.0.1/api/console' }), new InvocationContext({ functionName: 'console' }))
         .then((response) => console.log(JSON.stringify({ atLoad, afterFirst: chunks(), status: response.status })));`,
      dir,
    ) as { atLoad: string[]; afterFirst: string[]; status: number };
    expect(result.atLoad).toEqual(['config.js', 'index.js', 'zod.js']);
    expect(result.afterFirst).toEqual(['config.js', 'handlers.js', 'index.js', 'zod.js']);
    expect(result.status).toBe(200);
  });

  it('When the repository is built, Then package.json "main" is the bundle', () => {
    expect(entryPoint()).toBe(repoPath('dist', 'app', 'index.js'));
  });

  it('When the local runner starts, Then it serves the bundle: the compiled app modules are never loaded', () => {
    const runner = repoPath('dist', 'dev', 'local', 'runner.js');
    const loaded = node(
      `require(${JSON.stringify(runner)});
       console.log(JSON.stringify(Object.keys(require.cache)));`,
      repoPath(),
    ) as string[];
    // The app's table, routes, handlers, composition root, configuration and SDKs come
    // from the bundle only (the runner takes what it answers with itself from its exports).
    for (const module of [
      'app/definitions.js',
      'app/composition.js',
      'api/routes.js',
      'functions/index.js',
      'app/config.js',
    ])
      expect(loaded, module).not.toContain(repoPath('dist', 'src', ...module.split('/')));
    // Its own packages only: the scheduler and the loopback check's address parser.
    const packages = new Set(
      loaded
        .filter((path) => path.includes(`${sep}node_modules${sep}`))
        .map((path) => path.split(`${sep}node_modules${sep}`).pop()?.split(sep)[0]),
    );
    expect([...packages].sort()).toEqual(['croner', 'ipaddr.js']);
  });
});
