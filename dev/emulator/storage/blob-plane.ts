/**
 * The blob data plane of each emulated account, at its `primaryEndpoints.blob`
 * (`https://<emulator>/blob/<account>/`). It serves the probe clients use,
 * `GET /?comp=list&maxresults=1` with a bearer token, and applies the account's firewall late,
 * as Azure does: a management write reaches the data plane after the propagation delay shared
 * with the vault data plane (`dataPlane.propagationDelayMs`, overridable per name), and the
 * address the account sees is that data plane's `clientAddress` (or the TCP peer).
 *
 * Answers, as Azure's: 403 `AuthorizationFailure` while the firewall (or disabled public access)
 * refuses the caller, without naming the caller's address; past the firewall, 200 with an empty
 * container list, or 403 `AuthorizationPermissionMismatch` for an account seeded with
 * `dataRights: false` (a token without a Storage Blob Data role). Both mean "the rule applies".
 */
import type { Exchange } from '../arm-exchange';
import { clientAddressFor, dataPlaneSettings, type ModelContext } from '../arm-model';
import { Propagation } from '../propagation';
import type { AccountRecord } from './account';
import { ipRulesAdmit, type StorageNetworkAcls } from './network-rule-set';

export const BLOB_PREFIX = '/blob/';
/** The first version that accepts Entra (bearer) authorization. */
const MIN_BEARER_VERSION = '2017-11-09';

interface BlobFirewall {
  networkAcls: StorageNetworkAcls;
  publicNetworkAccess: unknown;
}

export interface BlobPlaneStats {
  /** 200: past the firewall, with data rights. */
  allowed: number;
  /** 403 AuthorizationFailure. */
  refused: number;
  /** 403 AuthorizationPermissionMismatch: past the firewall, without data rights. */
  permissionMismatch: number;
  /** 401 or 400 before the firewall was consulted. */
  rejected: number;
}

function zeroStats(): BlobPlaneStats {
  return { allowed: 0, refused: 0, permissionMismatch: 0, rejected: 0 };
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export class BlobPlane {
  private readonly propagation: Propagation<BlobFirewall>;
  private counters = zeroStats();

  constructor(
    private readonly context: ModelContext,
    private readonly find: (name: string) => AccountRecord | undefined,
  ) {
    this.propagation = new Propagation(context.now);
  }

  /** `https://127.0.0.1:<port>/blob/<name>/`, or Azure's form before the server listens. */
  endpoint(name: string): string {
    const base = this.context.baseUrl();
    return base === undefined
      ? `https://${name}.blob.core.windows.net/`
      : `${base}${BLOB_PREFIX}${encodeURIComponent(name)}/`;
  }

  /** Every stored version of an account passes through here. */
  recordVersion(record: AccountRecord): void {
    const { propagationDelayMs } = dataPlaneSettings(this.context.dataPlaneConfig(), record.name);
    this.propagation.record(
      record.key,
      {
        networkAcls: record.networkAcls,
        publicNetworkAccess: record.properties['publicNetworkAccess'],
      },
      propagationDelayMs,
    );
  }

  stats(): BlobPlaneStats {
    return { ...this.counters };
  }

  resetStats(): void {
    this.counters = zeroStats();
  }

  answer(exchange: Exchange, url: URL): void {
    const [name = ''] = url.pathname.slice(BLOB_PREFIX.length).split('/');
    const record = this.find(decodeURIComponent(name));
    const fail = (
      status: number,
      code: string,
      message: string,
      headers: Record<string, string> = {},
    ): void => {
      const text = `${message}\nRequestId:${exchange.requestId}\nTime:${new Date(this.context.now()).toISOString()}`;
      exchange.sendText(
        status,
        'application/xml',
        `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${escapeXml(text)}</Message></Error>`,
        { 'x-ms-error-code': code, ...headers },
      );
    };
    if (!record) {
      this.counters.rejected += 1;
      fail(404, 'ResourceNotFound', `No storage account named '${name}' in this emulator.`);
      return;
    }
    if (!/^Bearer \S+$/.test(exchange.req.headers.authorization ?? '')) {
      this.counters.rejected += 1;
      fail(
        401,
        'NoAuthenticationInformation',
        'Server failed to authenticate the request. Please refer to the information in the www-authenticate header.',
        {
          'WWW-Authenticate':
            'Bearer authorization_uri=https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/oauth2/authorize resource_id=https://storage.azure.com',
        },
      );
      return;
    }
    const version = exchange.req.headers['x-ms-version'];
    if (typeof version !== 'string' || version < MIN_BEARER_VERSION) {
      this.counters.rejected += 1;
      fail(
        400,
        'MissingRequiredHeader',
        `An HTTP header that's mandatory for this request is not specified: x-ms-version (${MIN_BEARER_VERSION} or later, for bearer tokens).`,
      );
      return;
    }
    if (exchange.req.method !== 'GET' || url.searchParams.get('comp') !== 'list') {
      this.counters.rejected += 1;
      fail(
        400,
        'UnsupportedQueryParameter',
        'The emulated blob service serves only GET /?comp=list.',
      );
      return;
    }
    const firewall = this.propagation.enforced(record.key);
    const address = clientAddressFor(
      this.context.dataPlaneConfig(),
      record.name,
      exchange.req.socket.remoteAddress,
    );
    const refused =
      firewall !== undefined &&
      (firewall.publicNetworkAccess === 'Disabled' ||
        (firewall.networkAcls.defaultAction === 'Deny' &&
          !ipRulesAdmit(firewall.networkAcls.ipRules, address)));
    if (refused) {
      this.counters.refused += 1;
      fail(
        403,
        'AuthorizationFailure',
        'This request is not authorized to perform this operation.',
      );
      return;
    }
    if (!record.dataRights) {
      this.counters.permissionMismatch += 1;
      fail(
        403,
        'AuthorizationPermissionMismatch',
        'This request is not authorized to perform this operation using this permission.',
      );
      return;
    }
    this.counters.allowed += 1;
    const maxResults = url.searchParams.get('maxresults') ?? '5000';
    exchange.sendText(
      200,
      'application/xml',
      `<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="${escapeXml(this.endpoint(record.name))}"><MaxResults>${escapeXml(maxResults)}</MaxResults><Containers /><NextMarker /></EnumerationResults>`,
      { 'x-ms-version': version },
    );
  }
}
