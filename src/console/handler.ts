import { readdirSync, readFileSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';

import type { HttpHandler, HttpResponseInit } from '@azure/functions';

import { problemResponse } from '../api/problem';
import { DomainError } from '../domain/errors';
import type { ConsoleSettings } from './settings';

/**
 * The operator console: a static page served by the Function App itself. The
 * bundle is built by `npm run build` (console/build.mjs, esbuild) into
 * dist/console and read from there on first request, then kept in memory.
 *
 * Every answer, errors included, carries a strict Content-Security-Policy (no
 * inline script or style: the page has none) and `nosniff`. What an operator
 * may do is decided by the API the page calls, never by this handler.
 */

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  // MSAL redeems the authorization code and refreshes tokens at the Entra endpoint.
  "connect-src 'self' https://login.microsoftonline.com",
  "frame-src 'none'",
  "object-src 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONSOLE_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  // Small files, rebuilt at every deploy: revalidate rather than guess a lifetime.
  'Cache-Control': 'no-cache',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** A file name the console may serve: one segment, a known type, no dot files. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.(?:js|css|svg)$/;

/**
 * dist/console: beside dist/app when this runs in the bundle the host loads
 * (dist/app/index.js), beside dist/src when compiled by tsc, under dist/ when
 * this runs from source (vitest).
 */
export function defaultAssetsDir(): string {
  for (const up of [resolve(__dirname, '..'), resolve(__dirname, '..', '..')]) {
    if (basename(up) === 'dist') return join(up, 'console');
  }
  return join(resolve(__dirname, '..', '..'), 'dist', 'console');
}

interface Asset {
  body: string;
  type: string;
}

function withHeaders(init: HttpResponseInit, extra: Record<string, string> = {}): HttpResponseInit {
  return {
    ...init,
    headers: { ...(init.headers as Record<string, string>), ...CONSOLE_HEADERS, ...extra },
  };
}

function notFound(detail: string): HttpResponseInit {
  return withHeaders(problemResponse(new DomainError('ROUTE.NOT_FOUND', detail)));
}

export interface ConsoleHandlers {
  page: HttpHandler;
  asset: HttpHandler;
}

export function createConsoleHandlers(options: {
  settings: () => ConsoleSettings;
  assetsDir?: string;
}): ConsoleHandlers {
  const dir = options.assetsDir ?? defaultAssetsDir();
  let assets: Map<string, Asset> | undefined;

  // NOTE: the listing is read once: only files the build wrote can be served,
  // so no request path ever reaches the file system.
  const load = (): Map<string, Asset> => {
    if (assets) return assets;
    const found = new Map<string, Asset>();
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      names = [];
    }
    for (const name of names) {
      const type = TYPES[extname(name)];
      if (type === undefined || !(FILE_NAME.test(name) || name === 'index.html')) continue;
      found.set(name, { body: readFileSync(join(dir, name), 'utf8'), type });
    }
    if (found.has('index.html')) assets = found;
    return found;
  };

  const serve = (name: string): HttpResponseInit => {
    const asset = load().get(name);
    if (!asset) {
      return notFound(
        name === 'index.html'
          ? 'The console is not built: run npm run build'
          : 'No such file of the console',
      );
    }
    return withHeaders({ status: 200, body: asset.body }, { 'Content-Type': asset.type });
  };

  return {
    page: () => Promise.resolve(serve('index.html')),
    asset: (request) => {
      const file = request.params.file ?? '';
      if (file === 'config.json') {
        return Promise.resolve(
          withHeaders(
            { status: 200, body: JSON.stringify(options.settings()) },
            { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' },
          ),
        );
      }
      return Promise.resolve(
        FILE_NAME.test(file) ? serve(file) : notFound('No such file of the console'),
      );
    },
  };
}
