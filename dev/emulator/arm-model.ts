/**
 * How a resource kind plugs into the emulator: it claims its Resource Manager paths, its admin
 * routes under `/_emulator/` and, when it has one, a data-plane prefix. The server keeps what is
 * common (authentication, api-version, the admin dispatcher); the kind keeps everything else.
 */
import type { z } from 'zod';

import { ArmError, badRequest, resourceNotFound } from './arm-error';
import type { Exchange } from './arm-exchange';
import { parseJson } from './arm-exchange';
import type { ArmGate, RefusalTarget } from './arm-gate';
import type { DataPlaneConfig } from './data-plane';

export type AdminHandler = (url: URL, body: Buffer) => { status: number; body: unknown };
export type AdminRoutes = Record<string, Partial<Record<string, AdminHandler>>>;

export interface ArmRequest {
  exchange: Exchange;
  url: URL;
  body: Buffer;
}

/** What the server lends a kind. */
export interface ModelContext {
  gate: ArmGate;
  /** `https://127.0.0.1:<port>` once the server listens. */
  baseUrl: () => string | undefined;
  /** The data-plane knobs shared by every kind (propagation delay, client address, per name). */
  dataPlaneConfig: () => DataPlaneConfig;
  now: () => number;
}

export interface ResourceModel {
  /** The handler for a Resource Manager path this kind owns, else undefined. */
  route(pathname: string): ((request: ArmRequest) => Promise<void>) | undefined;
  readonly adminRoutes: AdminRoutes;
  /** A data plane served under this path prefix (e.g. `/blob/`). */
  readonly dataPlanePrefix?: string;
  answerDataPlane?(exchange: Exchange, url: URL): void;
  resetStats(): void;
}

/** Decodes the captured path segments of a route, or says why it cannot. */
export function decodeSegments(pathname: string, segments: readonly string[]): string[] {
  try {
    return segments.map((segment) => decodeURIComponent(segment));
  } catch {
    throw badRequest(`The request path '${pathname}' is not correctly percent-encoded.`);
  }
}

/** `?id=` of an admin route, required. */
export function requiredQuery(url: URL, name: string, what: string): string {
  const value = url.searchParams.get(name);
  if (!value) {
    throw badRequest(`The query parameter ${name} (${what}) is required.`);
  }
  return value;
}

export function methodNotAllowed(allowed: readonly string[], method: string | undefined): ArmError {
  return new ArmError(
    405,
    'MethodNotAllowed',
    `The emulator supports ${allowed.join(', ')} here, not ${method ?? '(none)'}.`,
    { Allow: allowed.join(', ') },
  );
}

/** Per-name overrides first, then the global setting (the vault data plane's rule). */
export function dataPlaneSettings(
  config: DataPlaneConfig,
  name: string,
): { propagationDelayMs: number; clientAddress: string | null } {
  const own = config.vaults[name.toLowerCase()];
  return {
    propagationDelayMs: own?.propagationDelayMs ?? config.propagationDelayMs,
    clientAddress: own?.clientAddress ?? config.clientAddress,
  };
}

/**
 * The address a data plane sees for a caller: the configured one for this name, else the global
 * one, else the TCP peer (every test caller really comes from 127.0.0.1), IPv4-mapped IPv6
 * unwrapped. Every emulated data plane (vaults, blobs, SQL logins) decides it here.
 */
export function clientAddressFor(
  config: DataPlaneConfig,
  name: string,
  peer: string | undefined,
): string {
  const { clientAddress } = dataPlaneSettings(config, name);
  return (clientAddress ?? peer ?? '0.0.0.0').replace(/^::ffff:/i, '');
}

/** Where a resource lives; every kind modelled here is a resource-group resource. */
export interface ResourceCoordinates {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

/** `/subscriptions/…/resourceGroups/…/providers/<type>/<name>`. */
export function resourceId(type: string, c: ResourceCoordinates): string {
  return `/subscriptions/${c.subscriptionId}/resourceGroups/${c.resourceGroup}/providers/${type}/${c.name}`;
}

/** What the gate's refusals need, for a resource of `type` at `c`. */
export function refusalTargetFor(type: string, c: ResourceCoordinates): RefusalTarget {
  const id = resourceId(type, c);
  return {
    name: c.name,
    key: id.toLowerCase(),
    id,
    type,
    notFound: () => resourceNotFound(`${type}/${c.name}`, c.resourceGroup),
  };
}

/** Per-resource counters, created at zero on first use. */
export class StatsBook<T extends object> {
  private entries = new Map<string, T>();

  constructor(private readonly zero: () => T) {}

  of(key: string): T {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = this.zero();
      this.entries.set(key, entry);
    }
    return entry;
  }

  reset(): void {
    this.entries = new Map();
  }
}

/** An admin API body checked against a spec schema; a 400 naming every bad field otherwise. */
export function parseSpec<T extends z.ZodType>(schema: T, body: Buffer, what: string): z.output<T> {
  const spec = schema.safeParse(parseJson(body));
  if (!spec.success) {
    throw badRequest(
      `Invalid ${what}: ${spec.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  return spec.data;
}
