import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { SqlManagementClient } from '@azure/arm-sql';
import { StorageManagementClient } from '@azure/arm-storage';

import type { RunningEmulator, VaultSpec } from '../dev/emulator/types';
import { type BrokerProcess, type Child, startBrokerProcesses } from '../dev/local/processes';
import { TableLeaseStore } from '../src/adapters/tables/lease-store';
import { mapWithLimit } from '../src/domain/concurrency';
import { type Lease, newLeaseId } from '../src/domain/lease';
import { EMPTY_VAULT_STATE } from '../src/ports/lease-store';

/**
 * The small shared harness of `npm run bench`: what every scenario needs to
 * start brokers, talk to them and to the emulator, and report figures.
 */

export const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
export const RESOURCE_GROUP = 'rg-bench';
export const STATIC_RULE = '20.40.60.80/32';
/** Six-field NCRONTAB that never fires during a run: the bench triggers sweeps itself. */
export const NEVER = '0 0 0 1 1 *';
export const ARM_TOKEN = 'bench-token';

export const SWEEP_CHILD = join(__dirname, 'sweep-child.js');

// ---------------------------------------------------------------------------
// Results

export interface Row {
  scenario: string;
  metric: string;
  value: number | string;
  unit?: string;
  /** Human-readable target, e.g. "< 3000 ms". */
  target?: string;
  /** undefined: informative row without a target. */
  pass?: boolean;
}

export interface ScenarioResult {
  rows: Row[];
  /** Raw figures for the JSON file. */
  details: Record<string, unknown>;
}

/** What every scenario gets from `run.ts`. */
export interface BenchContext {
  storage: string;
  emulator: RunningEmulator;
  children: Children;
  log(message: string): void;
}

// ---------------------------------------------------------------------------
// Processes

/** Every child the bench started, so a failure or Ctrl-C still stops them all. */
export class Children {
  private readonly live = new Set<Child>();

  track(child: Child): Child {
    this.live.add(child);
    child.process.once('exit', () => this.live.delete(child));
    return child;
  }

  async stop(child: Child): Promise<void> {
    await child.stop();
    this.live.delete(child);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((child) => this.stop(child)));
  }
}

export type { BrokerProcess };

/** What a broker manages: Key Vaults by name (`BROKER_VAULTS`), other targets by resource ID. */
export interface BrokerOptions {
  vaults: string[];
  /** Resource IDs of targets of any kind, as `BROKER_TARGETS` (unset when left out). */
  targets?: string[];
  table: string;
  env?: Record<string, string>;
}

/** The environment of a broker process (or the sweep child), as the e2e tests build it. */
export function brokerEnv(ctx: BenchContext, options: BrokerOptions): NodeJS.ProcessEnv {
  if (!ctx.emulator.caPath) throw new Error('the emulator must be started with a certDir');
  return {
    ...process.env,
    BROKER_VAULTS: options.vaults.map((name) => vaultId(name)).join(','),
    // NOTE: only when asked for, so the Key Vault rows start their brokers exactly as before.
    ...(options.targets === undefined ? {} : { BROKER_TARGETS: options.targets.join(',') }),
    LEASE_STORAGE_CONNECTION_STRING: ctx.storage,
    LEASE_TABLE_NAME: options.table,
    AZURE_ARM_ENDPOINT: ctx.emulator.url,
    AZURE_ARM_TOKEN: ARM_TOKEN,
    NODE_EXTRA_CA_CERTS: ctx.emulator.caPath,
    AUTH_MODE: 'disabled',
    PORT: '0',
    SWEEP_SCHEDULE: NEVER,
    // With AUTH_MODE=disabled every caller is the one principal `local-dev`; the bench plays
    // hundreds of pipelines, so the per-principal cap (where the broker has one) must not apply.
    LEASE_MAX_ACTIVE_PER_PRINCIPAL: '1000',
    ...options.env,
  };
}

/** Broker processes (`dist/dev/local/runner.js`) sharing one table and the emulator. */
export async function startBrokers(
  ctx: BenchContext,
  options: { count: number } & Omit<BrokerOptions, 'env'>,
): Promise<BrokerProcess[]> {
  const env = brokerEnv(ctx, options);
  const brokers = await startBrokerProcesses(options.count, env);
  for (const broker of brokers) ctx.children.track(broker.child);
  return brokers;
}

/** Peak resident set size of a process in MB (`VmHWM`), or undefined when it is gone. */
export function peakRssMb(pid: number | 'self'): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return match ? Math.round(Number(match[1]) / 102.4) / 10 : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Vaults, addresses, tables

export function vaultId(name: string): string {
  return `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/${name}`;
}

/** A vault locked down as operators do: Deny, AzureServices, one static rule (plus `extraRules`). */
export function lockedVault(name: string, extraRules: string[] = []): VaultSpec {
  return {
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    name,
    networkAcls: {
      bypass: 'AzureServices',
      defaultAction: 'Deny',
      ipRules: [STATIC_RULE, ...extraRules].map((value) => ({ value })),
      virtualNetworkRules: [],
    },
  };
}

/** Canonical ipRules of a vault in the emulator. */
export function rulesOf(emulator: RunningEmulator, name: string): Set<string> {
  return new Set(emulator.getNetworkAcls(vaultId(name)).ipRules.map((rule) => rule.value));
}

/** Distinct public addresses, `52.x.y.z`; `block` keeps scenarios apart. */
export function publicIp(block: number, n: number): string {
  const index = block * 65536 + n;
  return `52.${10 + Math.floor(index / 65536)}.${Math.floor(index / 256) % 256}.${index % 256}`;
}

export function uniqueTable(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export function vaultStats(emulator: RunningEmulator, name: string) {
  return (
    emulator.stats().perVault[vaultId(name).toLowerCase()] ?? {
      gets: 0,
      writes: 0,
      writesApplied: 0,
      conflicts: 0,
    }
  );
}

// ---------------------------------------------------------------------------
// Clients

const sdkCredential = {
  getToken: () => Promise.resolve({ token: ARM_TOKEN, expiresOnTimestamp: Date.now() + 3600e3 }),
};

/** The options every raw SDK client of the bench takes: the emulator, its CA, no retries. */
function sdkOptions(emulator: RunningEmulator) {
  return {
    endpoint: emulator.url,
    credentials: { scopes: ['https://management.azure.com/.default'] },
    tlsOptions: { ca: emulator.caPem },
    // 409 is never retried by the SDK; no retries keeps 5xx/429 visible too.
    retryOptions: { maxRetries: 0 },
  };
}

/** The real SDK against the emulator, as a pipeline's Az module or the broker would use it. */
export function armClient(emulator: RunningEmulator): KeyVaultManagementClient {
  return new KeyVaultManagementClient(sdkCredential, SUBSCRIPTION, sdkOptions(emulator));
}

/** `@azure/arm-storage` against the emulator, set up as `armClient`. */
export function storageArmClient(emulator: RunningEmulator): StorageManagementClient {
  return new StorageManagementClient(sdkCredential, SUBSCRIPTION, sdkOptions(emulator));
}

/** `@azure/arm-sql` against the emulator, set up as `armClient`. */
export function sqlArmClient(emulator: RunningEmulator): SqlManagementClient {
  return new SqlManagementClient(sdkCredential, SUBSCRIPTION, sdkOptions(emulator));
}

export interface GrantOutcome {
  ip: string;
  status: number;
  ms: number;
  id?: string;
  /** `409 lease-limit-reached` for a problem answer. */
  problem?: string;
  /** The emulator (in this process) held the rule when the answer arrived. */
  ruleAtAnswer: boolean;
}

/**
 * A target of any kind as a scenario sees it: the name the API takes, and what the emulator
 * says about its firewall. `vaultTarget`, `storageTarget` and `sqlTarget` make one.
 */
export interface BenchTarget {
  /** `POST /api/leases` names it with this field: `vault` (a v1 client) or `target`. */
  field: 'vault' | 'target';
  name: string;
  /** The emulated firewall holds a rule admitting `ip` (a bare address) now. */
  admits(ip: string): boolean;
}

/** A Key Vault, named as a v1 client names it (`vault`), as today's rows always did. */
export function vaultTarget(emulator: RunningEmulator, name: string): BenchTarget {
  return { field: 'vault', name, admits: (ip) => rulesOf(emulator, name).has(`${ip}/32`) };
}

/** `POST /api/leases` for `ip` (as the front end's X-Forwarded-For), timed. */
export async function grant(
  ctx: BenchContext,
  brokerUrl: string,
  vault: string | BenchTarget,
  ip: string,
  ttlSeconds = 900,
): Promise<GrantOutcome> {
  const target = typeof vault === 'string' ? vaultTarget(ctx.emulator, vault) : vault;
  const started = performance.now();
  const response = await fetch(`${brokerUrl}/api/leases`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
    body: JSON.stringify({ [target.field]: target.name, ttlSeconds }),
  });
  const text = await response.text();
  const ms = performance.now() - started;
  const ruleAtAnswer = target.admits(ip);
  let body: { id?: string; type?: string } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // not JSON: keep the status only
  }
  const problem =
    response.status >= 400
      ? `${response.status} ${(body.type ?? '').replace('urn:kv-lease:problem:', '')}`.trim()
      : undefined;
  return { ip, status: response.status, ms, id: body.id, problem, ruleAtAnswer };
}

/** `DELETE /api/leases/{id}`, timed. */
export async function release(
  brokerUrl: string,
  id: string,
): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const response = await fetch(`${brokerUrl}/api/leases/${encodeURIComponent(id)}`, {
    method: 'DELETE',
  });
  await response.text();
  return { status: response.status, ms: performance.now() - started };
}

// ---------------------------------------------------------------------------
// Numbers

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export const median = (values: number[]): number => percentile(values, 50);

export function round(value: number, digits = 0): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Deterministic PRNG, so start jitters are the same on every run: the emulator's own. */
export { mulberry32 as seeded } from '../dev/emulator/chance';

/** The error of a failed ARM call, as a short label: `409 ConflictError`. */
export function armErrorLabel(error: unknown): string {
  const e = error as { statusCode?: number; code?: string; message?: string };
  if (e.statusCode !== undefined) return `${e.statusCode} ${e.code ?? ''}`.trim();
  return e.message ?? String(error);
}

/**
 * Seeds the state many leases leave behind, straight into the store and the
 * emulated firewalls (far faster than granting them): per vault, its rules,
 * the broker's ownership of them and one active lease row each. `lease`
 * fills in each lease's holder, reason and times.
 */
export async function seedLeasedVaults(
  ctx: BenchContext,
  options: {
    table: string;
    vaults: string[];
    leasesPerVault: number;
    /** The first `publicIp` block; vault `v` uses block `ipBlock + v`. */
    ipBlock: number;
    inFlight?: number;
    lease: (
      n: number,
      now: number,
    ) => Pick<Lease, 'principal' | 'reason' | 'createdAt' | 'expiresAt'>;
  },
): Promise<void> {
  const store = new TableLeaseStore({ tableName: options.table, connectionString: ctx.storage });
  const now = Date.now();
  const jobs: { vault: string; ip: string; n: number }[] = [];
  for (const [v, vault] of options.vaults.entries()) {
    const ips = Array.from(
      { length: options.leasesPerVault },
      (_, n) => `${publicIp(options.ipBlock + v, n)}/32`,
    );
    ctx.emulator.createVault(lockedVault(vault, ips));
    await store.putVaultState(vault, { ...EMPTY_VAULT_STATE, owned: [...ips].sort() });
    ips.forEach((ip, n) => jobs.push({ vault, ip, n }));
  }
  let done = 0;
  await mapWithLimit(jobs, options.inFlight ?? 16, async ({ vault, ip, n }) => {
    await store.createLease({
      id: newLeaseId(vault, now),
      vault,
      ip,
      status: 'active',
      ...options.lease(n, now),
    });
    done += 1;
    if (done % 2000 === 0) ctx.log(`seeded ${done}/${jobs.length} leases`);
  });
}
