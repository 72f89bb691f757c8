import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';

import type { HttpResponseInit, InvocationContext, Timer } from '@azure/functions';
import { Cron } from 'croner';

import { METHOD_NOT_ALLOWED_PREFIX } from '../../src/app/function-names';
import type * as Entry from '../../src/functions/index';
import { APP_ROOT, entryPoint, type HttpRegistration, loadApp, type LoadedApp } from './app-loader';
import { isLoopbackHost } from './loopback-host';

/**
 * The local runner: loads the app the host loads (package.json "main", the
 * esbuild bundle; see app-loader.ts), serves the functions it registers on
 * 127.0.0.1:PORT, and runs the timer on its NCRONTAB schedule.
 * It passes request headers through unchanged (no X-Forwarded-For added), and
 * answers only requests addressed to a loopback Host (DNS rebinding defence).
 */

type RunnerParts = ReturnType<typeof Entry.runnerParts>;

let parts: RunnerParts | undefined;

/**
 * What the runner answers with itself (request and context classes, the
 * configuration check, problem answers, the body limit), taken from the
 * bundle it serves: src/functions/index.ts exports them for this.
 */
function app(): RunnerParts {
  parts ??= (loadApp(entryPoint()).exports as typeof Entry).runnerParts();
  return parts;
}

interface Route {
  definition: HttpRegistration;
  pattern: RegExp;
  names: string[];
}

function routePrefix(): string {
  try {
    const host = JSON.parse(readFileSync(join(APP_ROOT, 'host.json'), 'utf8')) as {
      extensions?: { http?: { routePrefix?: string } };
    };
    return host.extensions?.http?.routePrefix ?? 'api';
  } catch {
    return 'api';
  }
}

function compile(definition: HttpRegistration, prefix: string): Route {
  const names: string[] = [];
  const source = `${prefix}/${definition.route}`
    .split('/')
    .map((segment) => {
      const param = /^\{(\w+)\}$/.exec(segment);
      if (param) {
        names.push(param[1] as string);
        return '([^/]+)';
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { definition, pattern: new RegExp(`^/${source}/?$`, 'i'), names };
}

/** Substitute `%SETTING%` placeholders the way the Functions host does. */

/** The route's `{name}` values, percent-decoded; `undefined` when the encoding is malformed. */
function pathParams(
  names: string[],
  match: RegExpExecArray | null | undefined,
): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  try {
    names.forEach((name, index) => {
      params[name] = decodeURIComponent(match?.[index + 1] ?? '');
    });
  } catch {
    return undefined; // URIError: a lone or malformed %xx
  }
  return params;
}

export function resolveSchedule(schedule: string, env: NodeJS.ProcessEnv): string {
  return schedule.replace(/%(\w+)%/g, (_match, name: string) => {
    const value = env[name];
    if (value === undefined || value === '')
      throw new (app().ConfigError)(`The timer schedule needs the setting ${name}`);
    return value;
  });
}

/**
 * The body, or `undefined` once it passes the API's limit: refused here,
 * before a handler (and so authentication) runs, the rest drained unkept.
 */
function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > app().MAX_BODY_BYTES) {
        resolve(undefined);
        request.resume();
        return;
      }
      parts.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(parts)));
    request.on('error', reject);
  });
}

async function send(response: ServerResponse, init: HttpResponseInit): Promise<void> {
  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((value, name) => {
    headers[name] = value;
  });
  let body: string | Buffer = '';
  if (init.jsonBody !== undefined) {
    body = JSON.stringify(init.jsonBody);
    headers['content-type'] ??= 'application/json';
  } else if (typeof init.body === 'string') {
    body = init.body;
  } else if (init.body !== undefined && init.body !== null) {
    body = Buffer.from(
      await new Response(init.body as ConstructorParameters<typeof Response>[0]).arrayBuffer(),
    );
  }
  response.writeHead(init.status ?? 200, headers);
  response.end(body);
}

/** 400 for a request whose Host is not this machine's loopback (see isLoopbackHost). */
function foreignHost(host: string | undefined): HttpResponseInit {
  const shown =
    host === undefined ? 'no Host header' : `Host ${JSON.stringify(host.slice(0, 100))}`;
  const { DomainError, problemResponse } = app();
  return problemResponse(
    new DomainError(
      'REQUEST.INVALID',
      `The local runner answers only requests to localhost, 127.0.0.0/8 or [::1], not ${shown}: ` +
        'a web page could otherwise reach it by DNS rebinding',
      { errors: [{ path: 'Host header', message: 'is not a loopback name or address' }] },
    ),
  );
}

function contextFor(name: string): InvocationContext {
  return new (app().InvocationContext)({
    invocationId: randomUUID(),
    functionName: name,
    // Function logs go to stderr, like the host's console; never request headers.
    logHandler: (level, ...args) => {
      if (level === 'debug' || level === 'trace') return;
      process.stderr.write(`[${level}] ${name}: ${args.map(String).join(' ')}\n`);
    },
  });
}

export interface RunningBroker {
  url: string;
  server: Server;
  /** The loaded app: `app.terminate()` runs its appTerminate hooks (writer locks handed over). */
  app: LoadedApp;
  close(): Promise<void>;
}

export async function startRunner(options: {
  port: number;
  env?: NodeJS.ProcessEnv;
}): Promise<RunningBroker> {
  // Settings with a default in the config schema resolve like the host's app settings would.
  const env = {
    SWEEP_SCHEDULE: app().loadConfig(options.env ?? process.env).SWEEP_SCHEDULE,
    ...(options.env ?? process.env),
  };
  const loaded = loadApp(entryPoint());
  const { DomainError, HttpRequest, MAX_BODY_BYTES, problemResponse } = app();
  const definitions = loaded.functions;
  const prefix = routePrefix();
  const routes = definitions
    .filter((d): d is HttpRegistration => d.kind === 'http')
    .map((d) => compile(d, prefix));

  const server = createServer((request, response) => {
    void (async () => {
      try {
        const host = request.headers.host;
        if (!isLoopbackHost(host)) {
          request.resume();
          await send(response, foreignHost(host));
          return;
        }
        const url = new URL(request.url ?? '/', `http://${host}`);
        const matching = routes
          .map((route) => ({ route, match: route.pattern.exec(url.pathname) }))
          .filter((entry) => entry.match !== null);
        const method = (request.method ?? 'GET').toUpperCase();
        // A method no definition names (TRACE, say) goes to the route's 405 definition too.
        const hit =
          matching.find((entry) => entry.route.definition.methods.includes(method)) ??
          matching.find((entry) =>
            entry.route.definition.name.startsWith(METHOD_NOT_ALLOWED_PREFIX),
          );
        if (!hit) {
          await send(
            response,
            problemResponse(
              new DomainError(
                'ROUTE.NOT_FOUND',
                `${method} ${url.pathname} is not an operation of this API`,
              ),
            ),
          );
          return;
        }
        const body = await readBody(request);
        if (body === undefined) {
          await send(
            response,
            problemResponse(
              new DomainError(
                'REQUEST.BODY_TOO_LARGE',
                `The request body exceeds ${MAX_BODY_BYTES} bytes`,
              ),
            ),
          );
          return;
        }
        const params = pathParams(hit.route.names, hit.match);
        if (!params) {
          await send(
            response,
            problemResponse(
              new DomainError('REQUEST.INVALID', 'The path is not valid percent-encoding', {
                errors: [{ path: '(path)', message: 'is not valid percent-encoding' }],
              }),
            ),
          );
          return;
        }
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(request.headers)) {
          if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
        }
        const httpRequest = new HttpRequest({
          method,
          url: url.toString(),
          headers,
          params,
          query: Object.fromEntries(url.searchParams.entries()),
          ...(body.length > 0 ? { body: { bytes: new Uint8Array(body) } } : {}),
        });
        const result = (await hit.route.definition.handler(
          httpRequest,
          contextFor(hit.route.definition.name),
        )) as HttpResponseInit | undefined;
        await send(response, result instanceof Object ? result : { status: 204 });
      } catch (error) {
        process.stderr.write(
          `[error] runner: ${error instanceof Error ? error.message : 'unknown'}\n`,
        );
        if (!response.headersSent)
          await send(response, problemResponse(error)).catch(() => undefined);
        else response.destroy();
      }
    })();
  });

  const timers: Cron[] = [];
  for (const definition of definitions) {
    if (definition.kind !== 'timer') continue;
    const pattern = resolveSchedule(definition.schedule, env);
    let last: Date | undefined;
    const cron = new Cron(pattern, { protect: true }, async () => {
      const timer: Timer = {
        isPastDue: false,
        schedule: { adjustForDST: true },
        scheduleStatus: {
          last: (last ?? new Date()).toISOString(),
          next: (cron.nextRun() ?? new Date()).toISOString(),
          lastUpdated: new Date().toISOString(),
        },
      };
      last = new Date();
      try {
        await definition.handler(timer, contextFor(definition.name));
      } catch (error) {
        process.stderr.write(
          `[error] ${definition.name}: ${error instanceof Error ? error.message : 'unknown'}\n`,
        );
      }
    });
    timers.push(cron);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    app: loaded,
    close: async () => {
      for (const timer of timers) timer.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `node dist/dev/local/runner.js`: the broker alone, configured by the environment. */
if (require.main === module) {
  let config;
  try {
    // The settings, checked before listening (loading the app checks them only in Azure, as
    // the host would): a bad one stops the runner with exit code 2 and says why.
    config = app().loadConfig();
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
  startRunner({ port: config.PORT })
    .then((broker) => {
      process.stdout.write(
        `${JSON.stringify({ ready: true, url: broker.url, pid: process.pid })}\n`,
      );
      const stop = () => {
        // The app's appTerminate hook first (it releases the writer locks), as the host runs
        // it on scale-in, so another broker takes over at once.
        void broker.app
          .terminate()
          .catch(() => undefined)
          .then(() => broker.close())
          .then(() => process.exit(0));
        setTimeout(() => process.exit(0), 3000).unref();
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    })
    .catch((error: unknown) => {
      process.stderr.write(
        `kv-lease could not start: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      process.exit(1);
    });
}
