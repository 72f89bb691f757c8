import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type * as Jose from 'jose' with { 'resolution-mode': 'import' };
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  createEntraAuthenticator,
  type EntraOptions,
} from '../../src/adapters/entra/authenticator';
import { DomainError } from '../../src/domain/errors';
import { hasRole, type Principal } from '../../src/domain/principal';

// jose 6 is ESM-only and this project compiles to CommonJS: load it the way src/adapters/entra/authenticator.ts does.
let jose: typeof Jose;

interface SigningKey {
  kid: string;
  privateKey: Jose.GenerateKeyPairResult['privateKey'];
  publicJwk: Jose.JWK;
  publicPem: string;
}

async function makeKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256');
  return {
    kid,
    privateKey,
    publicJwk: { ...(await jose.exportJWK(publicKey)), kid, use: 'sig' },
    publicPem: await jose.exportSPKI(publicKey),
  };
}

/** A JWKS endpoint on loopback whose answer each test can change. */
interface JwksServer {
  url: string;
  requests: number;
  /** 'keys' serves `keys`; the others simulate a broken key endpoint. */
  mode: 'keys' | 'status500' | 'invalid-json' | 'hang';
  keys: Jose.JWK[];
  close(): Promise<void>;
}

const servers: Server[] = [];

async function startJwksServer(keys: SigningKey[]): Promise<JwksServer> {
  const server = createServer((request, response) => {
    state.requests += 1;
    switch (state.mode) {
      case 'keys':
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ keys: state.keys }));
        return;
      case 'status500':
        response.writeHead(500, { 'content-type': 'text/plain' });
        response.end('boom');
        return;
      case 'invalid-json':
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{"keys": [');
        return;
      case 'hang':
        return; // never answers; the socket is destroyed on close
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  const { port } = server.address() as AddressInfo;
  const state: JwksServer = {
    url: `http://127.0.0.1:${port}/discovery/v2.0/keys`,
    requests: 0,
    mode: 'keys',
    keys: keys.map((key) => key.publicJwk),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  return state;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    if (server.listening) {
      server.close();
      await once(server, 'close');
    }
  }
});

const tenantId = crypto.randomUUID();
const otherTenantId = crypto.randomUUID();
const appIdUri = 'api://kv-lease-test';
const clientId = crypto.randomUUID();
const v1Issuer = `https://sts.windows.net/${tenantId}/`;
const v2Issuer = `https://login.microsoftonline.com/${tenantId}/v2.0`;

let keyA: SigningKey;
let keyB: SigningKey;
let stranger: SigningKey;

beforeAll(async () => {
  jose = await import('jose');
  [keyA, keyB, stranger] = await Promise.all([
    makeKey('key-a'),
    makeKey('key-b'),
    makeKey('key-unknown'),
  ]);
});

function options(server: JwksServer, extra: Partial<EntraOptions> = {}): EntraOptions {
  return { tenantId, audiences: [appIdUri, clientId], jwksUri: server.url, ...extra };
}

/** Claims of a v1 app-only token as Entra issues it for `az account get-access-token`. */
function v1Claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    aud: appIdUri,
    iss: v1Issuer,
    iat: now - 10,
    nbf: now - 10,
    exp: now + 3600,
    appid: 'pipeline-app-id',
    oid: crypto.randomUUID(),
    tid: tenantId,
    roles: ['Lease.Request'],
    ...overrides,
  };
}

function v2Claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const { appid: _appid, ...v1 } = v1Claims();
  return {
    ...v1,
    aud: clientId,
    iss: v2Issuer,
    azp: 'pipeline-client-id',
    ver: '2.0',
    ...overrides,
  };
}

async function sign(claims: Record<string, unknown>, key: SigningKey = keyA): Promise<string> {
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: key.kid })
    .sign(key.privateKey);
}

/** Signs `claims` padded so that the compact token is within a few characters of `length`. */
async function signWithLength(length: number, claims: Record<string, unknown>): Promise<string> {
  let padding = 0;
  let token = await sign(claims);
  for (let attempt = 0; attempt < 5 && Math.abs(token.length - length) > 3; attempt += 1) {
    padding = Math.max(0, padding + Math.floor(((length - token.length) * 3) / 4));
    token = await sign({ ...claims, padding: 'x'.repeat(padding) });
  }
  return token;
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function bearer(token: string, scheme = 'Bearer'): Headers {
  return new Headers({ authorization: `${scheme} ${token}` });
}

/** Asserts the DomainError code and that nothing of the token leaks into the message. */
async function expectRejected(
  attempt: Promise<Principal>,
  code: 'AUTH.UNAUTHENTICATED' | 'AUTH.UNAVAILABLE' | 'AUTH.FORBIDDEN',
  token?: string,
): Promise<DomainError> {
  const error: unknown = await attempt.then(
    (principal) => {
      throw new Error(`expected ${code}, but authenticated ${JSON.stringify(principal)}`);
    },
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(DomainError);
  const domainError = error as DomainError;
  expect(domainError.code).toBe(code);
  expect(domainError.message.length).toBeGreaterThan(0);
  expect(domainError.message.length).toBeLessThan(120);
  if (token !== undefined) {
    for (const part of token.split('.').filter((segment) => segment.length >= 8)) {
      expect(domainError.message).not.toContain(part);
    }
  }
  return domainError;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('createEntraAuthenticator', () => {
  describe('accepted tokens', () => {
    it('When a valid v1 app-only token is presented, then the principal carries oid, appid and known roles', async () => {
      const server = await startJwksServer([keyA]);
      const claims = v1Claims({ roles: ['Lease.Request', 'Some.Other.Role'] });
      const principal = await createEntraAuthenticator(options(server)).authenticate(
        bearer(await sign(claims)),
      );
      expect(principal.id).toBe(claims.oid);
      expect(principal.appId).toBe('pipeline-app-id');
      expect([...principal.roles]).toEqual(['Lease.Request']);
      expect(hasRole(principal, 'Lease.Admin')).toBe(false);
    });

    it('When a valid v2 token with Lease.Admin is presented, then appId comes from azp and Admin implies the other roles', async () => {
      const server = await startJwksServer([keyA]);
      const claims = v2Claims({ roles: ['Lease.Admin', 'Lease.Read'] });
      const principal = await createEntraAuthenticator(options(server)).authenticate(
        bearer(await sign(claims)),
      );
      expect(principal.id).toBe(claims.oid);
      expect(principal.appId).toBe('pipeline-client-id');
      expect(new Set(principal.roles)).toEqual(new Set(['Lease.Admin', 'Lease.Read']));
      expect(hasRole(principal, 'Lease.Request')).toBe(true);
    });

    it('When a valid token has no known role, then it still authenticates with an empty role set', async () => {
      const server = await startJwksServer([keyA]);
      const principal = await createEntraAuthenticator(options(server)).authenticate(
        bearer(await sign(v1Claims({ roles: ['Reader', 42] }))),
      );
      expect(principal.roles.size).toBe(0);
      const noRolesClaim = await createEntraAuthenticator(options(server)).authenticate(
        bearer(await sign(v1Claims({ roles: undefined }))),
      );
      expect(noRolesClaim.roles.size).toBe(0);
    });

    it('When the scheme is written in lower case, then the token is still accepted', async () => {
      const server = await startJwksServer([keyA]);
      const principal = await createEntraAuthenticator(options(server)).authenticate(
        bearer(await sign(v1Claims()), 'bearer'),
      );
      expect(principal.roles.has('Lease.Request')).toBe(true);
    });

    it('When a token expired within the clock tolerance, then it is still accepted', async () => {
      const server = await startJwksServer([keyA]);
      const now = Math.floor(Date.now() / 1000);
      const token = await sign(v1Claims({ exp: now - 20 }));
      await expect(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
      ).resolves.toMatchObject({ appId: 'pipeline-app-id' });
      // ...and refused once the tolerance is smaller than the skew.
      await expectRejected(
        createEntraAuthenticator(options(server, { clockToleranceSeconds: 5 })).authenticate(
          bearer(token),
        ),
        'AUTH.UNAUTHENTICATED',
        token,
      );
    });

    it('When the tenant id is configured in upper case, then tokens of that tenant are accepted', async () => {
      const server = await startJwksServer([keyA]);
      const principal = await createEntraAuthenticator(
        options(server, { tenantId: tenantId.toUpperCase() }),
      ).authenticate(bearer(await sign(v2Claims())));
      expect(principal.appId).toBe('pipeline-client-id');
    });

    it('When AUTH_ISSUER lists custom issuers, then only those issuers are accepted', async () => {
      const server = await startJwksServer([keyA]);
      const authenticator = createEntraAuthenticator(
        options(server, { issuer: ' https://issuer.test/a , https://issuer.test/b ' }),
      );
      await expect(
        authenticator.authenticate(bearer(await sign(v1Claims({ iss: 'https://issuer.test/b' })))),
      ).resolves.toBeDefined();
      const v1 = await sign(v1Claims());
      await expectRejected(authenticator.authenticate(bearer(v1)), 'AUTH.UNAUTHENTICATED', v1);
    });

    it('When many requests are authenticated, then the key set is fetched once and cached', async () => {
      const server = await startJwksServer([keyA]);
      const authenticator = createEntraAuthenticator(options(server));
      const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => sign(v1Claims())));
      await Promise.all(tokens.map((token) => authenticator.authenticate(bearer(token))));
      await authenticator.authenticate(bearer(tokens[0] ?? ''));
      expect(server.requests).toBe(1);
    });
  });

  describe('access tokens only, as the platform means them', () => {
    /**
     * An ID token as Entra issues it to a client that signs a user in (the
     * console signs in with the broker's own registration): `aud` is that
     * client's id, which AUTH_AUDIENCE lists; no `appid`/`azp`, no `scp`; a
     * `nonce`; the user's app roles when the user holds some.
     */
    function idTokenClaims(version: 1 | 2, overrides: Record<string, unknown> = {}) {
      const { appid: _appid, ...base } = v1Claims({ roles: ['Lease.Admin'] });
      return {
        ...base,
        aud: clientId,
        iss: version === 2 ? v2Issuer : v1Issuer,
        ver: version === 2 ? '2.0' : '1.0',
        sub: 'pairwise-subject',
        name: 'An Operator',
        preferred_username: 'operator@example.test',
        nonce: 'b2f1c0de',
        ...overrides,
      };
    }

    it.each([
      ['a v2 ID token with the user’s roles', idTokenClaims(2)],
      ['a v1 ID token', idTokenClaims(1)],
      ['a v2 ID token without nonce', idTokenClaims(2, { nonce: undefined })],
      ['an ID token that names an azp (nonce)', idTokenClaims(2, { azp: clientId })],
      [
        'an ID token that names an azp (at_hash)',
        idTokenClaims(2, { azp: clientId, nonce: undefined, at_hash: 'x' }),
      ],
      [
        'an ID token that names an azp (c_hash)',
        idTokenClaims(2, { azp: clientId, nonce: undefined, c_hash: 'x' }),
      ],
      ['an app-only token with a nonce', v1Claims({ nonce: 'n' })],
    ])(
      'When %s is presented, then it answers AUTH.UNAUTHENTICATED saying it is an ID token',
      async (_name, claims) => {
        const server = await startJwksServer([keyA]);
        const token = await sign(JSON.parse(JSON.stringify(claims)) as Record<string, unknown>);
        const error = await expectRejected(
          createEntraAuthenticator(options(server)).authenticate(bearer(token)),
          'AUTH.UNAUTHENTICATED',
          token,
        );
        expect(error.message).toMatch(/ID token.*access token/);
      },
    );

    it('When a user’s v2 access token carries user_impersonation among its scopes, then it is accepted as delegated, with the user’s roles', async () => {
      const server = await startJwksServer([keyA]);
      const claims = v2Claims({
        azp: 'console-client-id',
        scp: 'openid user_impersonation',
        roles: ['Lease.Read'],
        sub: 'pairwise-subject',
      });
      const principal = await createEntraAuthenticator(options(server)).authenticate(
        bearer(await sign(claims)),
      );
      expect(principal).toMatchObject({
        id: claims.oid,
        appId: 'console-client-id',
        delegated: true,
      });
      expect([...principal.roles]).toEqual(['Lease.Read']);
    });

    it('When a v1 app-only token says idtyp app, then it is accepted as the application itself', async () => {
      const server = await startJwksServer([keyA]);
      const principal = await createEntraAuthenticator(options(server)).authenticate(
        bearer(await sign(v1Claims({ idtyp: 'app' }))),
      );
      expect(principal).toMatchObject({ appId: 'pipeline-app-id', delegated: false });
    });

    it.each([
      ['a scope of another API', { scp: 'User.Read' }],
      ['an empty scope claim', { scp: '' }],
      ['a scope that only resembles it', { scp: 'user_impersonation2 xuser_impersonation' }],
      ['the scope in another case', { scp: 'User_Impersonation' }],
      ['a scope claim that is not a string', { scp: ['user_impersonation'] }],
      ['idtyp user and no scope claim', { idtyp: 'user' }],
    ])(
      'When a user’s token has %s, then it answers AUTH.FORBIDDEN naming the scope, roles or not',
      async (_name, overrides) => {
        const server = await startJwksServer([keyA]);
        const token = await sign(v2Claims({ roles: ['Lease.Admin'], ...overrides }));
        const error = await expectRejected(
          createEntraAuthenticator(options(server)).authenticate(bearer(token)),
          'AUTH.FORBIDDEN',
          token,
        );
        expect(error.message).toContain('user_impersonation');
      },
    );
  });

  describe('missing or malformed credentials', () => {
    it('When there is no Authorization header, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(new Headers()),
        'AUTH.UNAUTHENTICATED',
      );
      expect(server.requests).toBe(0);
    });

    it('When the scheme is not Bearer, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const token = await sign(v1Claims());
      const error = await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token, 'Basic')),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      expect(error.message).toMatch(/Bearer/);
    });

    it('When the token is garbage, then it answers AUTH.UNAUTHENTICATED without fetching keys', async () => {
      const server = await startJwksServer([keyA]);
      const authenticator = createEntraAuthenticator(options(server));
      for (const garbage of ['not-a-jwt', 'a.b', '%%%.***.!!!', 'a.b.c.d']) {
        await expectRejected(authenticator.authenticate(bearer(garbage)), 'AUTH.UNAUTHENTICATED');
      }
      expect(server.requests).toBe(0);
      // base64url segments that decode to nonsense get as far as jose and fail there
      const nonsense = 'eyJub3QiOiJqc29u.bm90IGpzb24.c2ln';
      await expectRejected(
        authenticator.authenticate(bearer(nonsense)),
        'AUTH.UNAUTHENTICATED',
        nonsense,
      );
    });

    it('When two tokens are sent, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const token = await sign(v1Claims());
      const headers = new Headers();
      headers.append('authorization', `Bearer ${token}`);
      headers.append('authorization', `Bearer ${token}`);
      await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(headers),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(`${token} ${token}`)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
    });

    it('When the token is longer than 8 KiB, then it is refused before any key fetch', async () => {
      const server = await startJwksServer([keyA]);
      const token = await sign(v1Claims({ padding: 'x'.repeat(9000) }));
      const error = await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      expect(error.message).toMatch(/too long/);
      expect(server.requests).toBe(0);
    });
    it('When the token is just over 8 KiB, then it is refused; just under, it is accepted', async () => {
      const server = await startJwksServer([keyA]);
      const authenticator = createEntraAuthenticator(options(server));
      const over = await signWithLength(8 * 1024 + 10, v1Claims());
      expect(over.length).toBeGreaterThan(8 * 1024);
      const error = await expectRejected(
        authenticator.authenticate(bearer(over)),
        'AUTH.UNAUTHENTICATED',
        over,
      );
      expect(error.message).toMatch(/too long/);
      const under = await signWithLength(8 * 1024 - 10, v1Claims());
      expect(under.length).toBeLessThanOrEqual(8 * 1024);
      await expect(authenticator.authenticate(bearer(under))).resolves.toBeDefined();
    });
  });

  describe('tokens that fail verification', () => {
    it('When the token is expired, then it answers AUTH.UNAUTHENTICATED saying so', async () => {
      const server = await startJwksServer([keyA]);
      const now = Math.floor(Date.now() / 1000);
      const token = await sign(v1Claims({ iat: now - 7200, nbf: now - 7200, exp: now - 300 }));
      const error = await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      expect(error.message).toBe('The bearer token is expired');
    });

    it('When nbf lies beyond the clock tolerance in the future, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const now = Math.floor(Date.now() / 1000);
      const token = await sign(v1Claims({ nbf: now + 300, exp: now + 3900 }));
      const error = await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      expect(error.message).toMatch(/not valid yet/);
    });

    it('When the token has no exp, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const token = await sign(v1Claims({ exp: undefined }));
      await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
    });

    it('When the issuer is another tenant, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const token = await sign(v1Claims({ iss: `https://sts.windows.net/${otherTenantId}/` }));
      const error = await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      expect(error.message).toMatch(/issued/);
    });

    it('When the audience is another API, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const token = await sign(v1Claims({ aud: 'https://management.azure.com/' }));
      const error = await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      expect(error.message).toMatch(/audience/);
    });

    it('When tid names another tenant, then it answers AUTH.UNAUTHENTICATED even with a custom issuer', async () => {
      const server = await startJwksServer([keyA]);
      const token = await sign(v1Claims({ tid: otherTenantId }));
      await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      const custom = await sign(v1Claims({ tid: otherTenantId, iss: 'https://issuer.test/' }));
      const error = await expectRejected(
        createEntraAuthenticator(options(server, { issuer: 'https://issuer.test/' })).authenticate(
          bearer(custom),
        ),
        'AUTH.UNAUTHENTICATED',
        custom,
      );
      expect(error.message).toMatch(/tenant/);
    });

    it('When the token has no oid, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const token = await sign(v1Claims({ oid: undefined }));
      const error = await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      expect(error.message).toMatch(/oid/);
    });

    it('When the token is signed with a key the key set does not hold, then it answers 401, not 503', async () => {
      const server = await startJwksServer([keyA]);
      const token = await sign(v1Claims(), stranger);
      const error = await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      expect(error.message).toMatch(/unknown key/);
      expect(server.requests).toBe(1);
    });

    it('When the token is unsigned (alg none), then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(v1Claims({ roles: ['Lease.Admin'] }))}.`;
      await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
    });

    it('When the token is HS256-signed with the public key as secret, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const claims = v1Claims({ roles: ['Lease.Admin'] });
      const authenticator = createEntraAuthenticator(options(server));
      for (const secret of [keyA.publicPem, JSON.stringify(keyA.publicJwk)]) {
        const token = await new jose.SignJWT(claims)
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: keyA.kid })
          .sign(new TextEncoder().encode(secret));
        const error = await expectRejected(
          authenticator.authenticate(bearer(token)),
          'AUTH.UNAUTHENTICATED',
          token,
        );
        expect(error.message).toMatch(/RS256/);
      }
    });

    it('When the payload is altered after signing, then it answers AUTH.UNAUTHENTICATED', async () => {
      const server = await startJwksServer([keyA]);
      const original = await sign(v1Claims({ roles: ['Lease.Request'] }));
      const [header, payload, signature] = original.split('.');
      const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as object;
      const token = `${header}.${b64url({ ...claims, roles: ['Lease.Admin'] })}.${signature}`;
      const authenticator = createEntraAuthenticator(options(server));
      await expect(authenticator.authenticate(bearer(original))).resolves.toBeDefined();
      const error = await expectRejected(
        authenticator.authenticate(bearer(token)),
        'AUTH.UNAUTHENTICATED',
        token,
      );
      expect(error.message).toMatch(/signature/);
    });
  });

  describe('key rotation and key set outages', () => {
    it('When the tenant starts signing with a new key, then tokens with it are accepted after the cooldown', async () => {
      const server = await startJwksServer([keyA]);
      const cooldownMs = 1_000;
      const authenticator = createEntraAuthenticator(options(server, { cooldownMs }));
      const [oldToken, newToken] = await Promise.all([
        sign(v1Claims()),
        sign(v1Claims({ roles: ['Lease.Admin'] }), keyB),
      ]);
      const started = Date.now();
      await authenticator.authenticate(bearer(oldToken));
      server.keys = [keyA.publicJwk, keyB.publicJwk];

      // Within the cooldown the cached set is trusted: no refetch, the new kid is unknown.
      await expectRejected(
        authenticator.authenticate(bearer(newToken)),
        'AUTH.UNAUTHENTICATED',
        newToken,
      );
      expect(Date.now() - started).toBeLessThan(cooldownMs);
      expect(server.requests).toBe(1);

      await sleep(cooldownMs + 100 - (Date.now() - started));
      const principal = await authenticator.authenticate(bearer(newToken));
      expect(principal.roles.has('Lease.Admin')).toBe(true);
      expect(server.requests).toBe(2);
      await expect(authenticator.authenticate(bearer(oldToken))).resolves.toBeDefined();
      expect(server.requests).toBe(2);
    });

    it('When the key endpoint refuses connections, then it answers AUTH.UNAVAILABLE with a retry hint', async () => {
      const server = await startJwksServer([keyA]);
      await server.close();
      const token = await sign(v1Claims());
      const error = await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAVAILABLE',
        token,
      );
      expect(error.message).toBe('The token signing keys could not be fetched; try again shortly');
      expect(error.retryAfterSeconds).toBe(5);
    });

    it('When the key endpoint answers 500, then it answers AUTH.UNAVAILABLE and recovers once the endpoint does', async () => {
      const server = await startJwksServer([keyA]);
      server.mode = 'status500';
      const token = await sign(v1Claims());
      const authenticator = createEntraAuthenticator(options(server));
      const error = await expectRejected(
        authenticator.authenticate(bearer(token)),
        'AUTH.UNAVAILABLE',
        token,
      );
      expect(error.retryAfterSeconds).toBe(5);
      server.mode = 'keys';
      await expect(authenticator.authenticate(bearer(token))).resolves.toBeDefined();
    });

    it('When the key endpoint answers invalid JSON, then it answers AUTH.UNAVAILABLE', async () => {
      const server = await startJwksServer([keyA]);
      server.mode = 'invalid-json';
      const token = await sign(v1Claims());
      await expectRejected(
        createEntraAuthenticator(options(server)).authenticate(bearer(token)),
        'AUTH.UNAVAILABLE',
        token,
      );
    });

    it('When the key endpoint never answers, then it answers AUTH.UNAVAILABLE after the fetch timeout', async () => {
      const server = await startJwksServer([keyA]);
      server.mode = 'hang';
      const token = await sign(v1Claims());
      const started = Date.now();
      await expectRejected(
        createEntraAuthenticator(options(server, { fetchTimeoutMs: 300 })).authenticate(
          bearer(token),
        ),
        'AUTH.UNAVAILABLE',
        token,
      );
      expect(Date.now() - started).toBeLessThan(3_000);
    });

    it('When an unknown kid triggers a refetch that fails, then it answers AUTH.UNAVAILABLE, not 401', async () => {
      const server = await startJwksServer([keyA]);
      const authenticator = createEntraAuthenticator(options(server, { cooldownMs: 50 }));
      await authenticator.authenticate(bearer(await sign(v1Claims())));
      server.mode = 'status500';
      await sleep(100);
      const token = await sign(v1Claims(), keyB);
      await expectRejected(authenticator.authenticate(bearer(token)), 'AUTH.UNAVAILABLE', token);
      expect(server.requests).toBe(2);
    });
  });
});
