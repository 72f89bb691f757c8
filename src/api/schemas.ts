import { z } from 'zod';

/**
 * The request and resource schemas of the API. They validate requests and
 * generate the OpenAPI document, so the two cannot drift apart.
 */

export const MAX_BODY_BYTES = 16 * 1024;

export const VaultName = z
  .string()
  .min(3)
  .max(24)
  .regex(
    /^[A-Za-z](?!.*--)[A-Za-z0-9-]*[A-Za-z0-9]$/,
    'must be a Key Vault name (3-24 letters, digits and hyphens)',
  )
  .meta({ description: 'Key Vault name, as configured in BROKER_VAULTS', example: 'kv-demo' });

export const LeaseId = z
  .string()
  .max(64)
  .regex(/^[a-z][a-z0-9-]{1,22}[a-z0-9]\.[a-z0-9]{24}$/, 'is not a lease id')
  .meta({ description: 'Opaque, URL-safe lease id' });

// NOTE: only the type is checked here; whole-number and range checks are the
// TTL policy's (src/policy/terms.ts), so every bad TTL is one problem type.
const TtlSeconds = z.number().meta({
  description:
    'Lease duration; LEASE_DEFAULT_TTL_SECONDS when omitted, within [LEASE_MIN_TTL_SECONDS, LEASE_MAX_TTL_SECONDS]',
});

export const GrantBody = z
  .strictObject({
    vault: VaultName,
    ttlSeconds: TtlSeconds.optional(),
    ip: z.string().min(1).max(64).optional().meta({
      description: 'Lease.Admin only: a public IPv4 address or CIDR (prefix >= LEASE_MIN_PREFIX)',
    }),
    reason: z
      .string()
      .max(256)
      .optional()
      .meta({ description: 'Free text, e.g. the pipeline run URL' }),
  })
  .meta({ id: 'GrantRequest' });

export const RenewBody = z
  .strictObject({ ttlSeconds: TtlSeconds.optional() })
  .meta({ id: 'RenewRequest' });

export const IdempotencyKey = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** Endpoints without query parameters refuse any, like the list endpoints refuse unknown ones. */
export const NoQuery = z.strictObject({});

export const ListQuery = z.strictObject({
  vault: VaultName.optional(),
  status: z.enum(['active', 'released', 'expired', 'all']).default('active'),
  $top: z.coerce.number().int().min(1).max(1000).default(100),
  $skiptoken: z.string().max(2048).optional(),
});

export const AuditQuery = z.strictObject({
  vault: VaultName.optional(),
  principal: z.string().min(1).max(128).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  $top: z.coerce.number().int().min(1).max(1000).default(100),
  $skiptoken: z.string().max(2048).optional(),
});

const Timestamp = z.iso.datetime().meta({ example: '2026-11-25T10:00:00.000Z' });

const VaultUri = z.string().meta({
  description:
    "The vault's data-plane URI (properties.vaultUri), where a client waits for the rule to take effect",
  example: 'https://kv-demo.vault.azure.net/',
});

export const LeaseResource = z
  .object({
    id: z.string(),
    vault: z.string(),
    ip: z.string().meta({ example: '52.10.20.30/32' }),
    status: z.enum(['active', 'released', 'expired']),
    principal: z.string(),
    reason: z.string().optional(),
    createdAt: Timestamp,
    expiresAt: Timestamp,
    endedAt: Timestamp.optional(),
    vaultUri: VaultUri.optional(),
  })
  .meta({ id: 'Lease' });

export const LeaseList = z
  .object({ value: z.array(LeaseResource), nextLink: z.string().optional() })
  .meta({ id: 'LeaseList' });

export const VaultList = z
  .object({
    value: z.array(
      z.object({
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
        lastPassAt: Timestamp.optional().meta({
          description: 'When the last writer pass completed',
        }),
        vaultUri: VaultUri.optional(),
      }),
    ),
  })
  .meta({ id: 'VaultList' });

export const AuditList = z
  .object({
    value: z.array(
      z.object({
        at: Timestamp,
        action: z.string(),
        principal: z.string().meta({ description: "The token's oid, anonymous or kv-lease" }),
        appId: z.string().optional().meta({ description: "The token's appid/azp" }),
        vault: z.string().optional(),
        ip: z.string().optional(),
        leaseId: z.string().optional(),
        outcome: z.string(),
        detail: z.string().optional().meta({ description: 'What happened or why it was refused' }),
        invocationId: z
          .string()
          .optional()
          .meta({ description: 'Functions invocation id, to correlate with logs' }),
      }),
    ),
    nextLink: z.string().optional(),
  })
  .meta({ id: 'AuditList' });

/** `GET /api/whoami` (contract section 5): one of `ip` and `ipProblem` is present. */
export const WhoAmIResource = z
  .object({
    principal: z.string().meta({ description: "The token's oid, or local-dev" }),
    roles: z.array(z.enum(['Lease.Request', 'Lease.Read', 'Lease.Admin'])).meta({
      description: 'The app roles the broker recognised (Lease.Admin implies the other two)',
    }),
    ip: z.string().optional().meta({
      description: 'The address a grant without ip would lease for this caller',
      example: '52.10.20.30/32',
    }),
    ipProblem: z.string().optional().meta({
      description: 'Why no address could be taken (the detail a grant would answer)',
    }),
  })
  .meta({ id: 'WhoAmI' });

export const Health = z.object({ status: z.enum(['ok', 'unavailable']) }).meta({ id: 'Health' });

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem' });
