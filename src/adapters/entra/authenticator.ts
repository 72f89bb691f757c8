import { DomainError } from '../../domain/errors';
import type { Authenticator, Principal, RequestHeaders, Role } from '../../domain/principal';
import { ROLES } from '../../domain/principal';

/** Settings of the Entra ID token check (`AUTH_*` in the contract's configuration table). */
export interface EntraOptions {
  /** The one tenant whose tokens are accepted (`AUTH_TENANT_ID`); multi-tenant aliases are not supported. */
  tenantId: string;
  /** Accepted `aud` values (`AUTH_AUDIENCE`): the App ID URI for v1 tokens, the client id for v2. */
  audiences: string[];
  /** overrides the issuers derived from the tenant (AUTH_ISSUER; may be a comma list) */
  issuer?: string | undefined;
  /** overrides https://login.microsoftonline.com/{tid}/discovery/v2.0/keys (AUTH_JWKS_URI) */
  jwksUri?: string | undefined;
  /**
   * Allowed clock skew for `exp`/`nbf`, in seconds. Default 60: Entra tokens live about an hour,
   * so a small tolerance absorbs skew between hosts without stretching a token's life noticeably.
   */
  clockToleranceSeconds?: number;
  /** how soon an unknown `kid` may trigger a refetch of the key set (rotation); default 30_000 */
  cooldownMs?: number;
  /** How long one key set download may take before the request is answered 503; default 5_000. */
  fetchTimeoutMs?: number;
}

/**
 * Longest bearer token considered. Entra access tokens are a few KiB even with
 * many claims; anything far larger is refused before any base64 or JSON work.
 */
const MAX_TOKEN_LENGTH = 8 * 1024;

/** Three base64url segments; the signature may be empty so that `alg: none` reaches the algorithm check. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const KEY_SET_UNAVAILABLE_MESSAGE =
  'The token signing keys could not be fetched; try again shortly';
const RETRY_AFTER_SECONDS = 5;

/**
 * Marks a failure to obtain the key set (network, timeout, non-200, not a JWKS),
 * as opposed to a key set that was fetched and has no key for the token.
 */
class KeySetUnavailable extends Error {
  constructor(cause: unknown) {
    super('key set unavailable', { cause });
    this.name = 'KeySetUnavailable';
  }
}

function unauthenticated(message: string): DomainError {
  return new DomainError('AUTH.UNAUTHENTICATED', message);
}

/**
 * Builds the authenticator for `AUTH_MODE=entra`: it accepts access tokens
 * issued by one Entra ID tenant for this API, signed with one of the tenant's
 * published keys: app-only tokens, and a user's delegated tokens that carry
 * the `user_impersonation` scope. ID tokens are refused (see `principalFrom`).
 *
 * The key set is downloaded on first use and cached by this instance (jose
 * refreshes it after ten minutes). A token naming a `kid` the cached set lacks
 * triggers a refetch at most once per `cooldownMs`, so Entra's key rollover is
 * picked up without a restart while tokens with made-up `kid`s cannot turn the
 * broker into a request amplifier against the key endpoint.
 *
 * Failures are split by who can fix them: anything wrong with the token is
 * `AUTH.UNAUTHENTICATED` (401, the caller must get a new token), while a key
 * set that cannot be fetched is `AUTH.UNAVAILABLE` (503 with `Retry-After`),
 * because the same token may well be accepted a moment later. Messages are
 * fixed texts: neither the token nor jose's error text (which can carry
 * claims) ever reaches a response.
 */
export function createEntraAuthenticator(options: EntraOptions): Authenticator {
  const tenantId = options.tenantId.trim().toLowerCase();
  if (tenantId.length === 0) throw new TypeError('EntraOptions.tenantId must not be empty');
  const audiences = options.audiences.map((audience) => audience.trim()).filter(Boolean);
  if (audiences.length === 0) throw new TypeError('EntraOptions.audiences must not be empty');
  const issuers = issuersFor(tenantId, options.issuer);
  // NOTE: parsed eagerly so that a bad AUTH_JWKS_URI fails at start-up, not on the first request.
  const jwksUrl = new URL(
    options.jwksUri ?? `https://login.microsoftonline.com/${tenantId}/discovery/v2.0/keys`,
  );
  const clockTolerance = options.clockToleranceSeconds ?? 60;
  const cooldownDuration = options.cooldownMs ?? 30_000;
  const timeoutDuration = options.fetchTimeoutMs ?? 5_000;

  // jose 6 is ESM-only. The project compiles to CommonJS with module Node16, where
  // tsc keeps `import()` as a real dynamic import, so this loads on every Node 20
  // (require(esm) only exists from 20.19).
  let verifier: ReturnType<typeof createVerifier> | undefined;
  async function createVerifier() {
    const jose = await import('jose');
    const remote = jose.createRemoteJWKSet(jwksUrl, { cooldownDuration, timeoutDuration });
    const getKey = async (...args: Parameters<typeof remote>) => {
      try {
        return await remote(...args);
      } catch (error) {
        // "No key with that kid" after a successful download is the token's fault;
        // everything else here means the key set itself could not be obtained.
        const code = joseCode(error);
        if (code === 'ERR_JWKS_NO_MATCHING_KEY' || code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') {
          throw error;
        }
        throw new KeySetUnavailable(error);
      }
    };
    return (token: string) =>
      jose.jwtVerify(token, getKey, {
        issuer: issuers,
        audience: audiences,
        algorithms: ['RS256'],
        clockTolerance,
        requiredClaims: ['exp'],
      });
  }

  return {
    async authenticate(headers: RequestHeaders): Promise<Principal> {
      const token = bearerToken(headers);
      verifier ??= createVerifier();
      const verify = await verifier;
      let claims: Record<string, unknown>;
      try {
        ({ payload: claims } = await verify(token));
      } catch (error) {
        if (error instanceof KeySetUnavailable) {
          throw new DomainError('AUTH.UNAVAILABLE', KEY_SET_UNAVAILABLE_MESSAGE, {
            retryAfterSeconds: RETRY_AFTER_SECONDS,
            cause: error.cause,
          });
        }
        throw unauthenticated(verificationMessage(error));
      }
      return principalFrom(claims, tenantId);
    },
  };
}

/** v1 and v2 issuers of the tenant, or the `AUTH_ISSUER` override (sovereign clouds, tests). */
function issuersFor(tenantId: string, override: string | undefined): string[] {
  const overrides = (override ?? '')
    .split(',')
    .map((issuer) => issuer.trim())
    .filter(Boolean);
  if (overrides.length > 0) return overrides;
  return [
    `https://sts.windows.net/${tenantId}/`,
    `https://login.microsoftonline.com/${tenantId}/v2.0`,
  ];
}

function bearerToken(headers: RequestHeaders): string {
  const header = headers.get('authorization');
  if (header === null || header.trim().length === 0) {
    throw unauthenticated('A bearer token is required (Authorization: Bearer <token>)');
  }
  // Checked before any regular expression runs over caller-controlled text.
  if (header.length > MAX_TOKEN_LENGTH + 64) throw unauthenticated('The bearer token is too long');
  const parts = header.trim().split(/\s+/);
  if (parts[0]?.toLowerCase() !== 'bearer') {
    throw unauthenticated('The Authorization header must use the Bearer scheme');
  }
  // Two Authorization headers arrive joined by a comma and fail here too.
  const token = parts[1];
  if (parts.length !== 2 || token === undefined) {
    throw unauthenticated('The Authorization header must carry exactly one bearer token');
  }
  if (token.length > MAX_TOKEN_LENGTH) throw unauthenticated('The bearer token is too long');
  if (!COMPACT_JWS.test(token)) throw unauthenticated('The bearer token is not a well-formed JWT');
  return token;
}

function joseCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A fixed, safe text per failure kind; jose's own messages are never passed on. */
function verificationMessage(error: unknown): string {
  switch (joseCode(error)) {
    case 'ERR_JWT_EXPIRED':
      return 'The bearer token is expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const { claim, reason } = error as { claim?: unknown; reason?: unknown };
      if (reason === 'missing' && typeof claim === 'string') {
        return `The bearer token lacks the required "${claim}" claim`;
      }
      if (claim === 'nbf') return 'The bearer token is not valid yet';
      if (claim === 'iss') return 'The bearer token was not issued by the expected tenant';
      if (claim === 'aud') return 'The bearer token is not meant for this API (audience mismatch)';
      return 'The bearer token has an invalid claim';
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'The bearer token must be signed with RS256';
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'The bearer token is signed with an unknown key';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'The bearer token signature is invalid';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'The bearer token is not a well-formed JWT';
    default:
      return 'The bearer token could not be verified';
  }
}

/** The delegated permission (scope) a user's token must carry: the one the app registration exposes. */
export const USER_SCOPE = 'user_impersonation';

/**
 * Claims jose does not know about: the tenant, what kind of token this is,
 * the principal and its app roles.
 *
 * Only access tokens for this API are accepted, told apart from ID tokens by
 * the claims the Microsoft identity platform documents for each
 * (learn.microsoft.com/entra/identity-platform/access-token-claims-reference
 * and .../id-token-claims-reference):
 * - an access token always names the client application that asked for it,
 *   `appid` in v1 and `azp` in v2 tokens; an ID token names none, its `aud`
 *   is the client itself. An ID token issued to the broker's own app
 *   registration (the console signs in with it) has the client id as `aud`,
 *   which `AUTH_AUDIENCE` lists, and can carry the user's `roles`: without
 *   this check it would pass as a bearer token.
 * - `nonce`, `at_hash` and `c_hash` are OpenID Connect claims of ID tokens
 *   only; any of them refuses the token as well.
 * - a delegated (user) access token carries the granted scopes in `scp`,
 *   an app-only one carries none (its permissions are `roles`); the optional
 *   `idtyp` claim says `user` or `app` outright when the registration asks
 *   for it. A token with `scp` or `idtyp: user` is delegated.
 */
function principalFrom(claims: Record<string, unknown>, tenantId: string): Principal {
  // The issuer already names the tenant, but an AUTH_ISSUER override may not; `tid` is checked
  // on its own so that an override can never widen the accepted tenants.
  const { tid, oid, appid, azp, roles, scp, idtyp } = claims;
  if (typeof tid !== 'string' || tid.toLowerCase() !== tenantId) {
    throw unauthenticated('The bearer token belongs to another tenant');
  }
  const appId = typeof appid === 'string' ? appid : typeof azp === 'string' ? azp : undefined;
  if (appId === undefined || 'nonce' in claims || 'at_hash' in claims || 'c_hash' in claims) {
    throw unauthenticated('The bearer token is an ID token: send an access token for this API');
  }
  if (typeof oid !== 'string' || oid.length === 0) {
    throw unauthenticated('The bearer token lacks the required "oid" claim');
  }
  const delegated = scp !== undefined || idtyp === 'user';
  if (delegated) {
    const scopes = typeof scp === 'string' ? scp.split(' ') : [];
    // NOTE: 403, not 401: the token is genuine and names the user, but the client application
    // was not granted the scope; a new token of the same client would be refused again. This is
    // OAuth's insufficient_scope (RFC 6750 section 3.1), which Microsoft.Identity.Web answers 403 too.
    if (!scopes.includes(USER_SCOPE)) {
      throw new DomainError(
        'AUTH.FORBIDDEN',
        `A user's token needs the ${USER_SCOPE} scope of this API (scp); ask for <App ID URI>/${USER_SCOPE}`,
      );
    }
  }
  const known = new Set<Role>();
  if (Array.isArray(roles)) {
    for (const role of roles) {
      if ((ROLES as readonly unknown[]).includes(role)) known.add(role as Role);
    }
  }
  return { id: oid, appId, delegated, roles: known };
}
