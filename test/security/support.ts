import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type * as Jose from 'jose' with { 'resolution-mode': 'import' };

import type { RunningEmulator } from '../../dev/emulator/types';
import { TableLeaseStore } from '../../src/adapters/tables/lease-store';
import type { Services } from '../../src/api/services';
import type { Config } from '../../src/app/config';
import type { Clock } from '../../src/domain/clock';
import { type Logger, silentLogger } from '../../src/domain/logger';
import type { Authenticator } from '../../src/domain/principal';
import type { AuditEntry } from '../../src/ports/audit-log';
import { type CallInit, type CallResult, testBroker } from '../support/harness';

/**
 * Entra ID as the broker sees it, on loopback: one tenant, a key set served by
 * a local HTTP server, and tokens minted with the tenant's private key.
 */

// jose 6 is ESM-only and this project compiles to CommonJS: load it the way src/adapters/entra/authenticator.ts does.
let jose: typeof Jose | undefined;
async function loadJose(): Promise<typeof Jose> {
  jose ??= await import('jose');
  return jose;
}

export const AUDIENCE = 'api://kv-lease-security';
export const CLIENT_ID = '7a1c0de5-0000-4000-8000-00000000c11e';

export interface SigningKey {
  kid: string;
  privateKey: Jose.GenerateKeyPairResult['privateKey'];
  publicJwk: Jose.JWK;
  publicPem: string;
}

export async function makeKey(kid: string): Promise<SigningKey> {
  const j = await loadJose();
  const { privateKey, publicKey } = await j.generateKeyPair('RS256');
  return {
    kid,
    privateKey,
    publicJwk: { ...(await j.exportJWK(publicKey)), kid, use: 'sig' },
    publicPem: await j.exportSPKI(publicKey),
  };
}

export interface Identity {
  /** The token's `oid`: the principal. */
  oid: string;
  /** The token's `appid` (v1) or `azp` (v2). */
  appId: string;
  roles: string[];
}

export function identity(...roles: string[]): Identity {
  return { oid: randomUUID(), appId: randomUUID(), roles };
}

/** A tenant with a key set on loopback; `down()` makes the key endpoint refuse connections. */
export interface Tenant {
  id: string;
  jwksUri: string;
  key: SigningKey;
  /** Requests the key endpoint has answered. */
  requests(): number;
  /** Entra-style v1 claims for `who`, overridable claim by claim (`undefined` drops one). */
  claims(who: Identity, overrides?: Record<string, unknown>): Record<string, unknown>;
  /** A signed v1 token (v2 with `{ version: 2 }`). */
  token(
    who: Identity,
    overrides?: Record<string, unknown>,
    options?: TokenOptions,
  ): Promise<string>;
  env(): Record<string, string>;
  close(): Promise<void>;
}

export interface TokenOptions {
  version?: 1 | 2;
  key?: SigningKey;
}

export async function startTenant(): Promise<Tenant> {
  const key = await makeKey(`key-${randomUUID().slice(0, 8)}`);
  const id = randomUUID();
  let served = 0;
  const server: Server = createServer((_request, response) => {
    served += 1;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys: [key.publicJwk] }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const jwksUri = `http://127.0.0.1:${port}/${id}/discovery/v2.0/keys`;

  const claims: Tenant['claims'] = (who, overrides = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const base: Record<string, unknown> = {
      aud: AUDIENCE,
      iss: `https://sts.windows.net/${id}/`,
      iat: now - 10,
      nbf: now - 10,
      exp: now + 3600,
      appid: who.appId,
      oid: who.oid,
      tid: id,
      roles: who.roles,
      ...overrides,
    };
    return Object.fromEntries(Object.entries(base).filter(([, value]) => value !== undefined));
  };

  const token: Tenant['token'] = async (who, overrides = {}, options = {}) => {
    const j = await loadJose();
    const signer = options.key ?? key;
    let body = claims(who, overrides);
    if (options.version === 2) {
      const { appid: _appid, ...rest } = body;
      body = {
        ...rest,
        aud: CLIENT_ID,
        iss: `https://login.microsoftonline.com/${id}/v2.0`,
        azp: who.appId,
        ver: '2.0',
        ...overrides,
      };
    }
    return new j.SignJWT(body)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: signer.kid })
      .sign(signer.privateKey);
  };

  return {
    id,
    jwksUri,
    key,
    requests: () => served,
    claims,
    token,
    env: () => ({
      AUTH_MODE: 'entra',
      AUTH_TENANT_ID: id,
      AUTH_AUDIENCE: `${AUDIENCE},${CLIENT_ID}`,
      AUTH_JWKS_URI: jwksUri,
    }),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export type { CallInit, CallResult } from '../support/harness';

export interface SecureBroker {
  config: Config;
  services: Services;
  store: TableLeaseStore;
  call(method: string, path: string, init?: CallInit): Promise<CallResult>;
  /** The whole audit trail as the port returns it, newest first. */
  auditTrail(): Promise<AuditEntry[]>;
}

export interface CapturedLine {
  source: 'logger' | 'context';
  level: string;
  text: string;
}

/**
 * The broker in-process, as `testBroker` builds it (azurite, the emulator over
 * HTTPS through the real SDK), but with Entra settings, a fresh invocation id
 * per call and every log line captured when `capture` is given.
 */
export function secureBroker(options: {
  emulator: RunningEmulator;
  vaults: string[];
  env?: Record<string, string>;
  clock?: Clock;
  capture?: CapturedLine[];
  /** Replaces the Entra authenticator (fault injection). */
  auth?: Authenticator;
}): SecureBroker {
  const capture = options.capture;
  const logger: Logger = capture
    ? {
        info: (message, properties) =>
          capture.push({ source: 'logger', level: 'info', text: line(message, properties) }),
        warn: (message, properties) =>
          capture.push({ source: 'logger', level: 'warn', text: line(message, properties) }),
        error: (message, properties) =>
          capture.push({ source: 'logger', level: 'error', text: line(message, properties) }),
      }
    : silentLogger;
  const { config, services, store, audit, call } = testBroker({
    emulator: options.emulator,
    vaults: options.vaults,
    env: { AUTH_MODE: 'entra', ...options.env },
    clock: options.clock,
    logger,
    auth: options.auth,
    onContextLog: capture
      ? (level, text) => capture.push({ source: 'context', level, text })
      : undefined,
  });

  const auditTrail = async () => {
    const entries: AuditEntry[] = [];
    let continuation: string | undefined;
    do {
      const page = await audit.query({ top: 1000, continuation });
      entries.push(...page.entries);
      continuation = page.continuation;
    } while (continuation);
    return entries;
  };

  return { config, services, store, call, auditTrail };
}

function line(message: string, properties?: Record<string, unknown>): string {
  return properties === undefined ? message : `${message} ${JSON.stringify(properties)}`;
}

/** The problem+json shape every error answer must have, with nothing internal in it. */
export function isProblem(response: CallResult): boolean {
  const body = response.body as Record<string, unknown> | undefined;
  return (
    response.headers.get('content-type') === 'application/problem+json' &&
    body !== undefined &&
    typeof body.type === 'string' &&
    body.type.startsWith('urn:kv-lease:problem:') &&
    typeof body.title === 'string' &&
    body.status === response.status &&
    typeof body.detail === 'string' &&
    !/\bat .+:\d+:\d+|RestError|stack|statusCode|eyJ[\w-]+\.eyJ/.test(response.text)
  );
}
