import { readFileSync } from 'node:fs';
import Module from 'node:module';
import { isAbsolute, join, resolve, sep } from 'node:path';

/**
 * Loads the Function App the way the Functions host's Node.js worker does:
 * `require`s the file package.json "main" names (the esbuild bundle,
 * dist/app/index.js) with the module `@azure/functions-core` answered by a
 * stand-in, as the worker answers it with its own. `app.http`, `app.timer`
 * and `app.hook` of the `@azure/functions` inside the bundle register through
 * it; the stand-in keeps those registrations (names, bindings, handlers) for
 * the local runner to serve. So the runner, the tests and the bench run the
 * code that ships, not the TypeScript sources.
 */

/** The repository (or package) root: above dist/dev/local when compiled, above dev/local from source. */
export const APP_ROOT = __dirname.includes(`${sep}dist${sep}`)
  ? resolve(__dirname, '..', '..', '..')
  : resolve(__dirname, '..', '..');

/** The file the host loads: package.json "main" (one file, no glob), resolved against `root`. */
export function entryPoint(root: string = APP_ROOT): string {
  const main = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main?: unknown })
    .main;
  if (typeof main !== 'string' || main === '' || /[*?[{]/.test(main))
    throw new Error(
      `package.json "main" must name the one bundled entry file, not ${String(main)}`,
    );
  return isAbsolute(main) ? main : join(root, main);
}

export interface HttpRegistration {
  kind: 'http';
  name: string;
  methods: string[];
  /** Route below host.json's routePrefix, as registered. */
  route: string;
  handler: (request: unknown, context: unknown) => unknown;
}

export interface TimerRegistration {
  kind: 'timer';
  name: string;
  /** NCRONTAB, `%SETTING%` placeholders unresolved (the host resolves them). */
  schedule: string;
  handler: (timer: unknown, context: unknown) => unknown;
}

export type Registration = HttpRegistration | TimerRegistration;

type HookCallback = (context: { hookData: Record<string, unknown> }) => unknown;

export interface LoadedApp {
  entry: string;
  /** The entry's module.exports (the host ignores them; the runner uses them). */
  exports: unknown;
  functions: Registration[];
  /** Runs the app's appTerminate hooks (the host runs them when the instance goes away). */
  terminate(): Promise<void>;
}

/** A function's metadata as `@azure/functions` hands it to `registerFunction`. */
interface CoreFunctionMetadata {
  name: string;
  bindings: Record<
    string,
    { type: string; direction: string; methods?: string[]; route?: string; schedule?: string }
  >;
}

class Disposable {
  constructor(private readonly onDispose: () => void) {}
  dispose(): void {
    this.onDispose();
  }
}

interface Capture {
  functions: Registration[];
  appTerminate: HookCallback[];
}

/** Where registrations land while an entry loads (module loading is synchronous). */
let capture: Capture | undefined;

function registering(what: string): Capture {
  if (!capture)
    throw new Error(
      `${what} outside the loading of the app: the local runner serves only what loads`,
    );
  return capture;
}

function toRegistration(metadata: CoreFunctionMetadata, handler: unknown): Registration {
  if (typeof handler !== 'function') throw new Error(`Function ${metadata.name} has no handler`);
  const bindings = Object.values(metadata.bindings);
  const http = bindings.find((binding) => binding.type === 'httpTrigger');
  if (http)
    return {
      kind: 'http',
      name: metadata.name,
      methods: (http.methods ?? ['GET', 'POST']).map((method) => method.toUpperCase()),
      route: http.route ?? metadata.name,
      handler: handler as HttpRegistration['handler'],
    };
  const timer = bindings.find((binding) => binding.type === 'timerTrigger');
  if (timer?.schedule)
    return {
      kind: 'timer',
      name: metadata.name,
      schedule: timer.schedule,
      handler: handler as TimerRegistration['handler'],
    };
  // A trigger the runner cannot play: refuse loudly rather than serve a different app.
  throw new Error(
    `Function ${metadata.name} has a trigger the local runner does not serve: ${bindings.map((b) => b.type).join(', ')}`,
  );
}

/** The worker's API, as much of it as `@azure/functions` uses (see its tryGetCoreApiLazy). */
const coreApi = {
  Disposable,
  setProgrammingModel: (): void => undefined,
  registerFunction(metadata: CoreFunctionMetadata, handler: unknown): Disposable {
    const into = registering(`registerFunction(${metadata.name})`);
    const registration = toRegistration(metadata, handler);
    into.functions.push(registration);
    return new Disposable(() => {
      into.functions.splice(into.functions.indexOf(registration), 1);
    });
  },
  registerHook(name: string, callback: HookCallback): Disposable {
    const into = registering(`registerHook(${name})`);
    // The app registers appTerminate only; any other hook would be silently skipped here.
    if (name !== 'appTerminate')
      throw new Error(`The local runner does not run ${name} hooks (only appTerminate)`);
    into.appTerminate.push(callback);
    return new Disposable(() => {
      into.appTerminate.splice(into.appTerminate.indexOf(callback), 1);
    });
  },
  log(level: string, _category: string, message: string): void {
    if (level === 'warning' || level === 'error' || level === 'critical')
      process.stderr.write(`[${level}] functions: ${message}\n`);
  },
};

let installed = false;

/** Answers `require('@azure/functions-core')` with the stand-in, as the worker does with its own. */
export function installCoreModule(): void {
  if (installed) return;
  installed = true;
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = Module.prototype.require;
  Module.prototype.require = new Proxy(original, {
    apply(target, thisArg, args: Parameters<NodeJS.Require>) {
      if (args[0] === '@azure/functions-core') return coreApi;
      return Reflect.apply(target, thisArg, args) as unknown;
    },
  });
}

const loaded = new Map<string, LoadedApp>();

/**
 * Loads `entry` once per process (Node caches the module, so a second load
 * would register nothing) and returns what it registered.
 */
export function loadApp(entry: string = entryPoint()): LoadedApp {
  const known = loaded.get(entry);
  if (known) return known;
  installCoreModule();
  const into: Capture = { functions: [], appTerminate: [] };
  capture = into;
  let exports: unknown;
  try {
    // Node's own require, not a test runner's: the bundle is plain CommonJS.
    exports = Module.createRequire(entry)(entry) as unknown;
  } finally {
    capture = undefined;
  }
  const app: LoadedApp = {
    entry,
    exports,
    functions: into.functions,
    terminate: async () => {
      for (const hook of into.appTerminate) await hook({ hookData: {} });
    },
  };
  loaded.set(entry, app);
  return app;
}
