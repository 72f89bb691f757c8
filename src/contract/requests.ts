import { z } from 'zod';

import { requestSchemas } from './registry';

/** What a caller may send: bodies, query parameters and headers of the API. */

/** A request body over this many bytes is refused (413) before anything else is done with it. */
export const MAX_BODY_BYTES = 16 * 1024;

export const MAX_REASON_LENGTH = 256;

/**
 * A target's name (the last segment of its resource ID), whatever its kind:
 * 1-63 letters, digits and hyphens, no hyphen at either end. `vault` takes
 * any target's name too (contract §4), so a v1 client works with every kind.
 */
export const TargetName = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/,
    'must be a target name (letters, digits and hyphens, as configured in BROKER_TARGETS or BROKER_VAULTS)',
  )
  .meta({
    description: 'A managed target: a Key Vault, storage account or SQL server name',
    examples: ['kv-demo'],
  });

/** `vault`, as v1 names it: any target's name (contract §4). */
export const VaultName = TargetName;

/** The kinds of target (contract §4). */
export const TargetKindName = z.enum(['keyvault', 'storage', 'sql']);
export type TargetKindName = z.output<typeof TargetKindName>;

export const LeaseId = z
  .string()
  .max(100)
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.[a-z0-9]{24}$/, 'is not a lease id')
  .meta({ description: 'Opaque, URL-safe lease id' });

// NOTE: only the type is checked here; whole-number and range checks are the
// TTL policy's (src/policy/terms.ts), so every bad TTL is one problem type.
const TtlSeconds = z.number().meta({
  description:
    'Lease duration; LEASE_DEFAULT_TTL_SECONDS when omitted, within [LEASE_MIN_TTL_SECONDS, LEASE_MAX_TTL_SECONDS]',
});

/**
 * C0 and C1 control characters (U+0000–U+001F, U+007F–U+009F): a `reason`
 * holding one is refused (contract §5), so no terminal escape sequence, line
 * break or NUL is ever stored for a CLI, page or spreadsheet to render.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const PRINTABLE = /^[^\u0000-\u001f\u007f-\u009f]*$/;

/** `vault` and `target` are one target's two names (contract §4): when both are given, they agree. */
const namesOneTarget: [
  (input: { vault?: string | undefined; target?: string | undefined }) => boolean,
  { message: string; path: string[] },
] = [
  (input) =>
    input.vault === undefined ||
    input.target === undefined ||
    input.vault.toLowerCase() === input.target.toLowerCase(),
  { message: 'must name the same target as `vault` when both are given', path: ['target'] },
];

export const GrantBody = z
  .strictObject({
    vault: VaultName.optional().meta({
      description: 'The target, as v1 names it; `target` or `vault` is required',
    }),
    target: TargetName.optional().meta({
      description:
        'The target (contract §4); when `vault` is given too, both must name the same target',
    }),
    ttlSeconds: TtlSeconds.optional(),
    ip: z.string().min(1).max(64).optional().meta({
      description: 'Lease.Admin only: a public IPv4 address or CIDR (prefix >= LEASE_MIN_PREFIX)',
    }),
    reason: z
      .string()
      .max(MAX_REASON_LENGTH)
      .regex(PRINTABLE, 'must be printable text: no control characters')
      .optional()
      .meta({
        description:
          'Free text, e.g. the pipeline run URL; control characters (U+0000-U+001F, U+007F-U+009F) are refused',
      }),
  })
  .refine((body) => body.vault !== undefined || body.target !== undefined, {
    message: 'is required: name the target (`target`, or `vault` as in v1)',
    path: ['target'],
  })
  .refine(...namesOneTarget)
  // NOTE: the refinements do not reach the JSON schema (and an anyOf of `required` lists
  // fails ajv's strict mode): the description says "one of them".
  .meta({
    description:
      'A grant: `target` (or, as in v1, `vault`) is required; when both are given they must name the same target',
  })
  .register(requestSchemas, { id: 'GrantRequest' });

export type GrantBody = z.input<typeof GrantBody>;

export const RenewBody = z
  .strictObject({ ttlSeconds: TtlSeconds.optional() })
  .register(requestSchemas, { id: 'RenewRequest' });

export type RenewBody = z.input<typeof RenewBody>;

export const IdempotencyKey = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** Endpoints without query parameters refuse any, like the list endpoints refuse unknown ones. */
export const NoQuery = z.strictObject({});

export const LeaseStatusFilter = z.enum(['active', 'released', 'expired', 'all']);
export type LeaseStatusFilter = z.output<typeof LeaseStatusFilter>;

export const ListQuery = z
  .strictObject({
    vault: VaultName.optional(),
    target: TargetName.optional().meta({ description: 'A synonym of vault (contract §4)' }),
    kind: TargetKindName.optional().meta({ description: 'Only leases on targets of this kind' }),
    status: LeaseStatusFilter.default('active'),
    $top: z.coerce.number().int().min(1).max(1000).default(100),
    $skiptoken: z.string().max(2048).optional(),
  })
  .refine(...namesOneTarget);

export const AuditQuery = z
  .strictObject({
    vault: VaultName.optional(),
    target: TargetName.optional().meta({ description: 'A synonym of vault (contract §4)' }),
    kind: TargetKindName.optional().meta({
      description: 'Only entries about targets of this kind',
    }),
    principal: z.string().min(1).max(128).optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    $top: z.coerce.number().int().min(1).max(1000).default(100),
    $skiptoken: z.string().max(2048).optional(),
  })
  .refine(...namesOneTarget);
