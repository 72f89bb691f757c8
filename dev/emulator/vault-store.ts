import { ArmError, badRequest } from './arm-error';
import { AZURE_DEFAULT_ACLS, copyAcls, parseNetworkAcls } from './network-acls';
import type { NetworkAcls, VaultSpec } from './types';

export const DEFAULT_SUBSCRIPTION_ID = '00000000-0000-0000-0000-000000000000';
export const DEFAULT_TENANT_ID = '00000000-0000-0000-0000-000000000000';
export const DEFAULT_LOCATION = 'westeurope';
export const VAULT_TYPE = 'Microsoft.KeyVault/vaults';

export interface VaultCoordinates {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

/** Who made a change, as `systemData.lastModifiedBy` shows it. */
export type Modifier = 'arm-client' | 'emulator-admin';

/** One stored vault. Records are replaced whole on every write, never mutated in place. */
export interface VaultRecord extends VaultCoordinates {
  id: string;
  /** Lower-case resource id: Resource Manager compares ids case-insensitively. */
  key: string;
  location: string;
  tags: Record<string, string>;
  /** Writable properties other than `networkAcls`; read-only ones are computed when rendering. */
  properties: Record<string, unknown>;
  /** Undefined for a vault that was never given network rules: Azure then omits the property. */
  networkAcls: NetworkAcls | undefined;
  createdAt: string;
  lastModifiedAt: string;
  lastModifiedBy: Modifier;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RESOURCE_GROUP = /^[-\w.()]{1,90}$/;
const VAULT_NAME = /^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/;
const VAULT_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)\/?$/i;

export function vaultResourceId(c: VaultCoordinates): string {
  return `/subscriptions/${c.subscriptionId}/resourceGroups/${c.resourceGroup}/providers/${VAULT_TYPE}/${c.name}`;
}

export function vaultKey(c: VaultCoordinates): string {
  return vaultResourceId(c).toLowerCase();
}

export function parseVaultResourceId(resourceId: string): VaultCoordinates | undefined {
  const match = VAULT_ID.exec(resourceId);
  if (!match) {
    return undefined;
  }
  const [, subscriptionId = '', resourceGroup = '', name = ''] = match;
  return { subscriptionId, resourceGroup, name };
}

/**
 * The coordinates a seeding spec names (the default subscription when it names none), its
 * subscription id checked as Resource Manager checks it. Every resource kind seeds this way.
 */
export function specCoordinates(spec: {
  subscriptionId?: string | undefined;
  resourceGroup: string;
  name: string;
}): { subscriptionId: string; resourceGroup: string; name: string } {
  const subscriptionId = spec.subscriptionId ?? DEFAULT_SUBSCRIPTION_ID;
  validateSubscriptionId(subscriptionId);
  return { subscriptionId, resourceGroup: spec.resourceGroup, name: spec.name };
}

export function validateSubscriptionId(subscriptionId: string): void {
  if (!GUID.test(subscriptionId)) {
    throw new ArmError(
      400,
      'InvalidSubscriptionId',
      `The provided subscription identifier '${subscriptionId}' is malformed or invalid.`,
    );
  }
}

/** Azure's naming rules, so a test fixture that Azure would refuse is refused here too. */
export function validateCoordinates(c: VaultCoordinates): void {
  validateSubscriptionId(c.subscriptionId);
  if (!RESOURCE_GROUP.test(c.resourceGroup) || c.resourceGroup.endsWith('.')) {
    throw badRequest(
      `Resource group name '${c.resourceGroup}' is invalid: 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'.`,
    );
  }
  if (!VAULT_NAME.test(c.name)) {
    throw badRequest(
      `The vault name '${c.name}' is invalid: 3-24 letters, digits and single dashes, starting with a letter and ending with a letter or digit.`,
    );
  }
}

function normaliseLocation(location: string): string {
  return location.toLowerCase().replace(/\s+/g, '');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

type PropertyCheck = (value: unknown) => boolean;

const isBoolean: PropertyCheck = (v) => typeof v === 'boolean';

/**
 * The properties a client may write, with the check Key Vault applies. Anything else in
 * `properties` is read-only or unknown and is ignored, as Resource Manager does.
 */
const WRITABLE_PROPERTIES: Readonly<Record<string, { check: PropertyCheck; expected: string }>> = {
  tenantId: { check: (v) => typeof v === 'string' && GUID.test(v), expected: 'a tenant GUID' },
  sku: {
    check: (v) =>
      isRecord(v) && v['family'] === 'A' && (v['name'] === 'standard' || v['name'] === 'premium'),
    expected: '{ "family": "A", "name": "standard" | "premium" }',
  },
  accessPolicies: { check: Array.isArray, expected: 'an array' },
  enabledForDeployment: { check: isBoolean, expected: 'a boolean' },
  enabledForDiskEncryption: { check: isBoolean, expected: 'a boolean' },
  enabledForTemplateDeployment: { check: isBoolean, expected: 'a boolean' },
  enableSoftDelete: { check: isBoolean, expected: 'a boolean' },
  enableRbacAuthorization: { check: isBoolean, expected: 'a boolean' },
  enablePurgeProtection: { check: isBoolean, expected: 'a boolean' },
  softDeleteRetentionInDays: {
    check: (v) => Number.isInteger(v) && (v as number) >= 7 && (v as number) <= 90,
    expected: 'an integer from 7 to 90',
  },
  createMode: {
    check: (v) => v === 'default' || v === 'recover',
    expected: '"default" or "recover"',
  },
  publicNetworkAccess: {
    check: (v) => v === 'Enabled' || v === 'Disabled',
    expected: '"Enabled" or "Disabled"',
  },
};

function defaultProperties(): Record<string, unknown> {
  return {
    tenantId: DEFAULT_TENANT_ID,
    sku: { family: 'A', name: 'standard' },
    accessPolicies: [],
    enabledForDeployment: false,
    enabledForDiskEncryption: false,
    enabledForTemplateDeployment: false,
    enableSoftDelete: true,
    softDeleteRetentionInDays: 90,
    enableRbacAuthorization: true,
    publicNetworkAccess: 'Enabled',
  };
}

/** Copies the writable properties present in `input` over `target`, refusing a wrong type. */
function mergeWritableProperties(
  target: Record<string, unknown>,
  input: Record<string, unknown>,
): void {
  for (const [name, rule] of Object.entries(WRITABLE_PROPERTIES)) {
    const value = input[name];
    if (value === undefined) {
      continue;
    }
    if (!rule.check(value)) {
      throw badRequest(
        `Invalid value found at properties.${name}: ${JSON.stringify(value)}; expected ${rule.expected}.`,
      );
    }
    target[name] = structuredClone(value);
  }
}

function parseTags(input: unknown): Record<string, string> {
  if (!isRecord(input) || !Object.values(input).every((v) => typeof v === 'string')) {
    throw badRequest('Invalid value found at tags: expected an object of string values.');
  }
  return { ...(input as Record<string, string>) };
}

function parseBody(body: unknown): Record<string, unknown> {
  if (!isRecord(body)) {
    throw new ArmError(400, 'InvalidRequestContent', 'The request content must be a JSON object.');
  }
  return body;
}

export function newVaultRecord(spec: VaultSpec, now: Date): VaultRecord {
  const coordinates: VaultCoordinates = {
    subscriptionId: spec.subscriptionId ?? DEFAULT_SUBSCRIPTION_ID,
    resourceGroup: spec.resourceGroup,
    name: spec.name,
  };
  validateCoordinates(coordinates);
  const at = now.toISOString();
  return {
    ...coordinates,
    id: vaultResourceId(coordinates),
    key: vaultKey(coordinates),
    location: normaliseLocation(spec.location ?? DEFAULT_LOCATION),
    tags: {},
    properties: defaultProperties(),
    networkAcls:
      spec.networkAcls === undefined
        ? undefined
        : parseNetworkAcls(spec.networkAcls, AZURE_DEFAULT_ACLS, 'networkAcls'),
    createdAt: at,
    lastModifiedAt: at,
    lastModifiedBy: 'emulator-admin',
  };
}

/**
 * `vaults.update` (PATCH): properties absent from the body are kept, all or nothing.
 *
 * NOTE: inside a `networkAcls` that is sent, an omitted `bypass`, `defaultAction`, `ipRules` or
 * `virtualNetworkRules` is reset to its Azure default. Whether real Key Vault keeps or resets them
 * is unverified (see azure-facts.md); we choose the harsh answer on purpose, so a client that does
 * not send the complete `networkAcls` it read loses the firewall here, in tests, not in production.
 */
export function patchedVault(record: VaultRecord, body: unknown, now: Date): VaultRecord {
  const input = parseBody(body);
  const next: VaultRecord = {
    ...record,
    properties: structuredClone(record.properties),
    networkAcls: record.networkAcls && copyAcls(record.networkAcls),
  };
  if (input['tags'] !== undefined) {
    next.tags = parseTags(input['tags']);
  }
  const properties = input['properties'];
  if (properties !== undefined) {
    if (!isRecord(properties)) {
      throw badRequest('Invalid value found at properties: expected an object.');
    }
    mergeWritableProperties(next.properties, properties);
    if (properties['networkAcls'] !== undefined) {
      next.networkAcls = parseNetworkAcls(
        properties['networkAcls'],
        AZURE_DEFAULT_ACLS,
        'properties.networkAcls',
      );
    }
  }
  return touched(next, now, 'arm-client');
}

/**
 * `vaults.createOrUpdate` (PUT): the body replaces the vault. `location`, `properties.tenantId`
 * and `properties.sku` are required as in Azure, and an existing vault cannot change location.
 */
export function putVault(
  existing: VaultRecord | undefined,
  coordinates: VaultCoordinates,
  body: unknown,
  now: Date,
): VaultRecord {
  const input = parseBody(body);
  const location = input['location'];
  if (typeof location !== 'string' || location.trim() === '') {
    throw new ArmError(
      400,
      'LocationRequired',
      'The location property is required for this definition.',
    );
  }
  const properties = input['properties'];
  if (!isRecord(properties)) {
    throw badRequest('Invalid value found at properties: the properties object is required.');
  }
  for (const required of ['tenantId', 'sku']) {
    if (properties[required] === undefined) {
      throw badRequest(`Invalid value found at properties.${required}: the property is required.`);
    }
  }
  const normalised = normaliseLocation(location);
  if (existing && existing.location !== normalised) {
    throw new ArmError(
      400,
      'InvalidResourceLocation',
      `The resource '${existing.name}' already exists in location '${existing.location}' in resource group '${existing.resourceGroup}'. A resource with the same name cannot be created in location '${normalised}'. Please select a new resource name.`,
    );
  }
  const base = existing ?? newVaultRecord({ ...coordinates, location: normalised }, now);
  const next: VaultRecord = {
    ...base,
    tags: input['tags'] === undefined ? {} : parseTags(input['tags']),
    properties: defaultProperties(),
    networkAcls:
      properties['networkAcls'] === undefined
        ? undefined
        : parseNetworkAcls(properties['networkAcls'], AZURE_DEFAULT_ACLS, 'properties.networkAcls'),
  };
  mergeWritableProperties(next.properties, properties);
  return touched(next, now, 'arm-client');
}

/** The admin's out-of-band edit: fields left out keep their current value. */
export function withNetworkAcls(
  record: VaultRecord,
  acls: Partial<NetworkAcls>,
  now: Date,
): VaultRecord {
  const current = record.networkAcls ?? AZURE_DEFAULT_ACLS;
  const networkAcls = parseNetworkAcls(acls, current, 'networkAcls');
  return touched({ ...record, networkAcls }, now, 'emulator-admin');
}

function touched(record: VaultRecord, now: Date, by: Modifier): VaultRecord {
  return { ...record, lastModifiedAt: now.toISOString(), lastModifiedBy: by };
}

/** The vault as `GET` returns it, in the shape of the official 2026-02-01 example. */
export function renderVault(
  record: VaultRecord,
  vaultUri = `https://${record.name.toLowerCase()}.vault.azure.net`,
): Record<string, unknown> {
  const properties: Record<string, unknown> = {
    ...structuredClone(record.properties),
    vaultUri,
    provisioningState: 'Succeeded',
  };
  if (record.networkAcls) {
    properties['networkAcls'] = copyAcls(record.networkAcls);
  }
  return {
    id: record.id,
    name: record.name,
    type: VAULT_TYPE,
    location: record.location,
    tags: { ...record.tags },
    systemData: {
      createdAt: record.createdAt,
      createdBy: 'kv-lease-emulator',
      createdByType: 'Application',
      lastModifiedAt: record.lastModifiedAt,
      lastModifiedBy: record.lastModifiedBy,
      lastModifiedByType: 'Application',
    },
    properties,
  };
}

/** Vaults by lower-case resource id. */
export class VaultStore {
  private readonly vaults = new Map<string, VaultRecord>();

  /** `onVersion` sees every version stored (the emulated data plane follows the firewall). */
  constructor(private readonly onVersion?: (record: VaultRecord, created: boolean) => void) {}

  add(record: VaultRecord): void {
    if (this.vaults.has(record.key)) {
      throw new ArmError(409, 'Conflict', `The vault ${record.id} already exists.`);
    }
    this.vaults.set(record.key, record);
    this.onVersion?.(record, true);
  }

  replace(record: VaultRecord): void {
    const created = !this.vaults.has(record.key);
    this.vaults.set(record.key, record);
    this.onVersion?.(record, created);
  }

  /** A vault by name in any casing (names are unique in Azure; the first one here). */
  byName(name: string): VaultRecord | undefined {
    const lower = name.toLowerCase();
    return [...this.vaults.values()].find((record) => record.name.toLowerCase() === lower);
  }

  get(key: string): VaultRecord | undefined {
    return this.vaults.get(key);
  }

  /** Looks a vault up by a resource id in any casing; throws a 404 `ArmError` when unknown. */
  require(resourceId: string): VaultRecord {
    const coordinates = parseVaultResourceId(resourceId);
    const record = coordinates && this.vaults.get(vaultKey(coordinates));
    if (!record) {
      throw new ArmError(404, 'ResourceNotFound', `No vault with resource id '${resourceId}'.`);
    }
    return record;
  }

  list(): VaultRecord[] {
    return [...this.vaults.values()];
  }
}
