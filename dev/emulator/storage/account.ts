/**
 * One emulated storage account: its record, how `storageAccounts.update` (PATCH) changes it and
 * how `getProperties` renders it. PATCH keeps every property the body leaves out; a
 * `networkAcls` that is sent replaces the account's rule set whole (the lists are not merged).
 */
import { ArmError, badRequest } from '../arm-error';
import { resourceId } from '../arm-model';
import { DEFAULT_LOCATION, specCoordinates } from '../vault-store';
import {
  copyStorageAcls,
  parseStorageNetworkAcls,
  STORAGE_DEFAULT_ACLS,
  type StorageNetworkAcls,
} from './network-rule-set';

export const STORAGE_TYPE = 'Microsoft.Storage/storageAccounts';

export interface AccountCoordinates {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

export interface StorageAccountSpec {
  /** Defaults to `00000000-0000-0000-0000-000000000000`. */
  subscriptionId?: string;
  resourceGroup: string;
  /** 3-24 lower-case letters and digits, as Azure requires. */
  name: string;
  /** Defaults to `westeurope`. */
  location?: string;
  /** Fields left out take Azure's defaults (`defaultAction: Allow`, `bypass: AzureServices`). */
  networkAcls?: Partial<StorageNetworkAcls>;
  /** Default `Enabled`. */
  publicNetworkAccess?: 'Enabled' | 'Disabled';
  /**
   * Whether the caller's storage token carries data rights: true (default) makes the blob probe
   * answer 200 once the firewall admits it; false makes it answer 403
   * `AuthorizationPermissionMismatch`, which is past the firewall too.
   */
  dataRights?: boolean;
}

export interface AccountRecord extends AccountCoordinates {
  id: string;
  key: string;
  location: string;
  tags: Record<string, string>;
  sku: { name: string; tier: string };
  kind: string;
  /** Writable properties other than `networkAcls`. */
  properties: Record<string, unknown>;
  networkAcls: StorageNetworkAcls;
  dataRights: boolean;
  createdAt: string;
}

const RESOURCE_GROUP = /^[-\w.()]{1,90}$/;
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const ACCOUNT_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Storage\/storageAccounts\/([^/]+)\/?$/i;

export function accountResourceId(c: AccountCoordinates): string {
  return resourceId(STORAGE_TYPE, c);
}

export function accountKey(c: AccountCoordinates): string {
  return accountResourceId(c).toLowerCase();
}

export function parseAccountResourceId(resourceId: string): AccountCoordinates | undefined {
  const match = ACCOUNT_ID.exec(resourceId);
  if (!match) return undefined;
  const [, subscriptionId = '', resourceGroup = '', name = ''] = match;
  return { subscriptionId, resourceGroup, name };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isBoolean = (v: unknown): boolean => typeof v === 'boolean';

/** Writable properties besides `networkAcls`, with the check Storage applies; others are ignored. */
const WRITABLE: Readonly<Record<string, { check: (v: unknown) => boolean; expected: string }>> = {
  publicNetworkAccess: {
    check: (v) => v === 'Enabled' || v === 'Disabled',
    expected: '"Enabled" or "Disabled"',
  },
  minimumTlsVersion: {
    check: (v) => v === 'TLS1_0' || v === 'TLS1_1' || v === 'TLS1_2' || v === 'TLS1_3',
    expected: 'TLS1_0 to TLS1_3',
  },
  allowBlobPublicAccess: { check: isBoolean, expected: 'a boolean' },
  allowSharedKeyAccess: { check: isBoolean, expected: 'a boolean' },
  supportsHttpsTrafficOnly: { check: isBoolean, expected: 'a boolean' },
  accessTier: {
    check: (v) => v === 'Hot' || v === 'Cool' || v === 'Cold',
    expected: 'Hot, Cool or Cold',
  },
};

export function newAccountRecord(spec: StorageAccountSpec, now: Date): AccountRecord {
  const coordinates: AccountCoordinates = specCoordinates(spec);
  if (!RESOURCE_GROUP.test(coordinates.resourceGroup)) {
    throw badRequest(`Resource group name '${coordinates.resourceGroup}' is invalid.`);
  }
  if (!ACCOUNT_NAME.test(coordinates.name)) {
    throw new ArmError(
      400,
      'AccountNameInvalid',
      `${coordinates.name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.`,
    );
  }
  return {
    ...coordinates,
    id: accountResourceId(coordinates),
    key: accountKey(coordinates),
    location: (spec.location ?? DEFAULT_LOCATION).toLowerCase().replace(/\s+/g, ''),
    tags: {},
    sku: { name: 'Standard_LRS', tier: 'Standard' },
    kind: 'StorageV2',
    properties: {
      publicNetworkAccess: spec.publicNetworkAccess ?? 'Enabled',
      minimumTlsVersion: 'TLS1_2',
      allowBlobPublicAccess: false,
      allowSharedKeyAccess: true,
      supportsHttpsTrafficOnly: true,
      accessTier: 'Hot',
    },
    networkAcls:
      spec.networkAcls === undefined
        ? copyStorageAcls(STORAGE_DEFAULT_ACLS)
        : parseStorageNetworkAcls(spec.networkAcls, STORAGE_DEFAULT_ACLS, false),
    dataRights: spec.dataRights ?? true,
    createdAt: now.toISOString(),
  };
}

/**
 * `storageAccounts.update`: tags, sku and writable properties absent from the body are kept.
 *
 * NOTE: inside a `networkAcls` that is sent, an omitted `bypass`, `ipRules`, `virtualNetworkRules`
 * or `resourceAccessRules` is reset to its default (the list is replaced whole), and
 * `defaultAction` is required. Whether Azure resets or keeps omitted lists is unverified; the
 * harsh answer makes a client that does not send back the whole set it read fail here, in tests.
 */
export function patchedAccount(record: AccountRecord, body: unknown): AccountRecord {
  if (!isRecord(body)) {
    throw new ArmError(400, 'InvalidRequestContent', 'The request content must be a JSON object.');
  }
  const next: AccountRecord = {
    ...record,
    properties: structuredClone(record.properties),
    networkAcls: copyStorageAcls(record.networkAcls),
  };
  const tags = body['tags'];
  if (tags !== undefined) {
    if (!isRecord(tags) || !Object.values(tags).every((v) => typeof v === 'string')) {
      throw badRequest('Invalid value found at tags: expected an object of string values.');
    }
    next.tags = { ...(tags as Record<string, string>) };
  }
  const properties = body['properties'];
  if (properties !== undefined) {
    if (!isRecord(properties)) {
      throw badRequest('Invalid value found at properties: expected an object.');
    }
    for (const [name, rule] of Object.entries(WRITABLE)) {
      const value = properties[name];
      if (value === undefined) continue;
      if (!rule.check(value)) {
        throw badRequest(
          `Invalid value found at properties.${name}: ${JSON.stringify(value)}; expected ${rule.expected}.`,
        );
      }
      next.properties[name] = value;
    }
    if (properties['networkAcls'] !== undefined) {
      next.networkAcls = parseStorageNetworkAcls(
        properties['networkAcls'],
        STORAGE_DEFAULT_ACLS,
        true,
      );
    }
  }
  return next;
}

/** The admin's out-of-band edit: fields left out keep their current value. */
export function withStorageAcls(record: AccountRecord, acls: unknown): AccountRecord {
  return { ...record, networkAcls: parseStorageNetworkAcls(acls, record.networkAcls, false) };
}

/** The account as `getProperties` returns it; only the blob endpoint points at the emulator. */
export function renderAccount(
  record: AccountRecord,
  blobEndpoint: string,
): Record<string, unknown> {
  const azure = (service: string): string => `https://${record.name}.${service}.core.windows.net/`;
  return {
    id: record.id,
    name: record.name,
    type: STORAGE_TYPE,
    location: record.location,
    tags: { ...record.tags },
    sku: { ...record.sku },
    kind: record.kind,
    properties: {
      ...structuredClone(record.properties),
      provisioningState: 'Succeeded',
      creationTime: record.createdAt,
      primaryLocation: record.location,
      statusOfPrimary: 'available',
      primaryEndpoints: {
        blob: blobEndpoint,
        queue: azure('queue'),
        table: azure('table'),
        file: azure('file'),
        dfs: azure('dfs'),
        web: `https://${record.name}.z6.web.core.windows.net/`,
      },
      networkAcls: copyStorageAcls(record.networkAcls),
    },
  };
}
