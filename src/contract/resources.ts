import { z } from 'zod';

import { resourceSchemas } from './registry';

/**
 * What the broker answers: the resources of contract §1 exactly as they go
 * on the wire. A field the broker may send as `null` is nullable here, and an
 * object allows no field it does not list, so an answer with a new field or a
 * new `null` fails the test that validates every answer against the OpenAPI
 * document generated from these schemas.
 */

const Timestamp = z.iso.datetime().meta({ examples: ['2026-11-25T10:00:00.000Z'] });

const VaultUri = z.string().meta({
  description:
    "The vault's data-plane URI (properties.vaultUri), where a client waits for the rule to take effect",
  examples: ['https://kv-demo.vault.azure.net/'],
});

const Kind = z.enum(['keyvault', 'storage', 'sql']).meta({
  description: 'The kind of target: keyvault, storage or sql (contract §4)',
});

const DataPlane = z.string().meta({
  description:
    "Where a client waits for the rule to take effect: a vault's vaultUri, a storage account's blob endpoint, a SQL server's host:1433",
  examples: [
    'https://kv-demo.vault.azure.net/',
    'https://stdemo.blob.core.windows.net/',
    'sql-demo.database.windows.net:1433',
  ],
});

export const LeaseResource = z
  .object({
    id: z.string(),
    vault: z.string().meta({ description: "The target's name, for every kind (v1's name for it)" }),
    target: z.string().optional().meta({ description: "The target's name (the same as vault)" }),
    kind: Kind.optional(),
    ip: z.string().meta({ examples: ['52.10.20.30/32'] }),
    status: z.enum(['active', 'released', 'expired']),
    principal: z.string(),
    reason: z.string().optional(),
    createdAt: Timestamp,
    expiresAt: Timestamp,
    endedAt: Timestamp.optional(),
    vaultUri: VaultUri.optional(),
    dataPlane: DataPlane.optional(),
    warnings: z.array(z.string()).optional().meta({
      description:
        "Why the rule may not have the effect the caller expects (a storage account in the caller's own region); clients print them",
    }),
  })
  .register(resourceSchemas, { id: 'Lease' });

export type Lease = z.output<typeof LeaseResource>;

/** A page of a list: `{ value, nextLink? }`; `nextLink` is absent on the last page. */
export interface Page<T> {
  value: T[];
  nextLink?: string | undefined;
}

export const LeaseList = z
  .object({ value: z.array(LeaseResource), nextLink: z.string().optional() })
  .register(resourceSchemas, { id: 'LeaseList' });

export const VaultResource = z
  .object({
    name: z.string(),
    resourceId: z.string(),
    activeLeases: z.number().int(),
    brokerRules: z.number().int(),
    totalRules: z.number().int(),
    maxRules: z.number().int(),
    healthy: z.boolean().meta({
      description:
        'false when the last writer pass failed or Resource Manager did not answer the read for this list',
    }),
    lastError: z.string().optional().meta({ description: 'Why the vault is unhealthy' }),
    lastErrorAt: Timestamp.optional(),
    lastPassAt: Timestamp.optional().meta({ description: 'When the last writer pass completed' }),
    vaultUri: VaultUri.optional(),
  })
  .register(resourceSchemas, { id: 'Vault' });

export type Vault = z.output<typeof VaultResource>;

export const VaultList = z
  .object({ value: z.array(VaultResource) })
  .register(resourceSchemas, { id: 'VaultList' });

/** `GET /api/targets` (contract §4): every managed target, whatever its kind. */
export const TargetResource = z
  .object({
    name: z.string(),
    kind: Kind,
    resourceId: z.string(),
    activeLeases: z.number().int(),
    brokerRules: z.number().int(),
    totalRules: z.number().int(),
    maxRules: z.number().int().meta({ description: "The kind's limit of IP rules on one target" }),
    healthy: z.boolean().meta({
      description:
        'false when the last writer pass failed or Resource Manager did not answer the read for this list',
    }),
    lastError: z.string().optional().meta({ description: 'Why the target is unhealthy' }),
    lastErrorAt: Timestamp.optional(),
    lastPassAt: Timestamp.optional().meta({ description: 'When the last writer pass completed' }),
    dataPlane: DataPlane.optional(),
  })
  .register(resourceSchemas, { id: 'Target' });

export type Target = z.output<typeof TargetResource>;

export const TargetList = z
  .object({ value: z.array(TargetResource) })
  .register(resourceSchemas, { id: 'TargetList' });

/**
 * An audit item. Every field of contract §1 is present; those that do not
 * apply to an entry (a refusal before the vault was known, say) are `null`.
 */
export const AuditItemResource = z
  .object({
    at: Timestamp,
    action: z.string(),
    principal: z.string().meta({ description: "The token's oid, anonymous or kv-lease" }),
    appId: z.string().nullable().meta({ description: "The token's appid/azp" }),
    vault: z.string().nullable().meta({ description: "The target's name, for every kind" }),
    target: z
      .string()
      .nullable()
      .optional()
      .meta({ description: 'The same as vault (contract §4)' }),
    kind: Kind.nullable().optional(),
    ip: z.string().nullable(),
    leaseId: z.string().nullable(),
    outcome: z.string(),
    detail: z.string().nullable().meta({ description: 'What happened or why it was refused' }),
    invocationId: z
      .string()
      .nullable()
      .meta({ description: 'Functions invocation id, to correlate with logs' }),
  })
  .register(resourceSchemas, { id: 'AuditItem' });

export type AuditItem = z.output<typeof AuditItemResource>;

export const AuditList = z
  .object({ value: z.array(AuditItemResource), nextLink: z.string().optional() })
  .register(resourceSchemas, { id: 'AuditList' });

/** `GET /api/whoami` (contract §5): one of `ip` and `ipProblem` is present. */
export const WhoAmI = z
  .object({
    principal: z.string().meta({ description: "The token's oid, or local-dev" }),
    roles: z.array(z.enum(['Lease.Request', 'Lease.Read', 'Lease.Admin'])).meta({
      description: 'The app roles the broker recognised (Lease.Admin implies the other two)',
    }),
    ip: z
      .string()
      .optional()
      .meta({
        description: 'The address a grant without ip would lease for this caller',
        examples: ['52.10.20.30/32'],
      }),
    ipProblem: z.string().optional().meta({
      description: 'Why no address could be taken (the detail a grant would answer)',
    }),
  })
  .register(resourceSchemas, { id: 'WhoAmI' });

export type WhoAmI = z.output<typeof WhoAmI>;

export const Health = z
  .object({ status: z.enum(['ok', 'unavailable']) })
  .register(resourceSchemas, { id: 'Health' });

export type Health = z.output<typeof Health>;

/** Every problem `type` is this prefix and a stable slug (README, "Problem types"). */
export const PROBLEM_BASE = 'urn:kv-lease:problem:';

export const FieldErrorResource = z.object({ path: z.string(), message: z.string() });

export type FieldError = z.output<typeof FieldErrorResource>;

/** RFC 9457 problem details, the body of every error answer (`application/problem+json`). */
export const ProblemResource = z
  .object({
    type: z.string().startsWith(PROBLEM_BASE),
    title: z.string(),
    status: z.number().int().min(400).max(599),
    detail: z.string(),
    errors: z.array(FieldErrorResource).optional(),
  })
  .register(resourceSchemas, { id: 'Problem' });

export type Problem = z.output<typeof ProblemResource>;
