import { z } from 'zod';

import { requestSchemas } from './registry';

/** What a caller may send: bodies, query parameters and headers of the API. */

/** A request body over this many bytes is refused (413) before anything else is done with it. */
export const MAX_BODY_BYTES = 16 * 1024;

export const MAX_REASON_LENGTH = 256;

export const VaultName = z
  .string()
  .min(3)
  .max(24)
  .regex(
    /^[A-Za-z](?!.*--)[A-Za-z0-9-]*[A-Za-z0-9]$/,
    'must be a Key Vault name (3-24 letters, digits and hyphens)',
  )
  .meta({ description: 'Key Vault name, as configured in BROKER_VAULTS', examples: ['kv-demo'] });

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

/**
 * C0 and C1 control characters (U+0000–U+001F, U+007F–U+009F): a `reason`
 * holding one is refused (contract §5), so no terminal escape sequence, line
 * break or NUL is ever stored for a CLI, page or spreadsheet to render.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const PRINTABLE = /^[^\u0000-\u001f\u007f-\u009f]*$/;

export const GrantBody = z
  .strictObject({
    vault: VaultName,
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

export const ListQuery = z.strictObject({
  vault: VaultName.optional(),
  status: LeaseStatusFilter.default('active'),
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
