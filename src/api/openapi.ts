import { z } from 'zod';

import { PROBLEM_BASE, PROBLEM_KINDS } from './problem';
import {
  AuditList,
  AuditQuery,
  GrantBody,
  Health,
  LeaseList,
  LeaseResource,
  ListQuery,
  ProblemSchema,
  RenewBody,
  VaultList,
  WhoAmIResource,
} from './schemas';

/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate
 * requests (OpenAPI 3.1 schemas are JSON Schema 2020-12, zod's own target).
 */

type Json = Record<string, unknown>;

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Json {
  const {
    $schema: _drop,
    id: _id,
    ...rest
  } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Json;
  // A schema with a registered id comes back as a $ref into $defs: unwrap it,
  // since it becomes a component of its own.
  const { $ref, $defs } = rest as { $ref?: string; $defs?: Record<string, Json> };
  const own = $ref && $defs ? $defs[$ref.split('/').pop() ?? ''] : undefined;
  if (own) {
    const { id: _ownId, ...body } = own;
    return body;
  }
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

function queryParameters(schema: z.ZodObject): Json[] {
  const json = schemaOf(schema, 'input') as { properties?: Record<string, Json> };
  return Object.entries(json.properties ?? {}).map(([name, property]) => ({
    name,
    in: 'query',
    required: false,
    schema: property,
  }));
}

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ref('Problem') } },
});

const ok = (description: string, schema: string, headers?: Json) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { 'application/json': { schema: ref(schema) } },
});

const leaseIdParameter = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const bearer = [{ entra: [] }];
const commonErrors = {
  '400': problem('Invalid input'),
  '401': problem('No or bad token (WWW-Authenticate: Bearer)'),
  '403': problem('Authenticated but not allowed (role, or LEASE_POLICY for a grant)'),
  '502': problem(
    'Resource Manager refuses the vault for good (vault-unavailable: role removed, vault gone)',
  ),
  '503': problem('Store or vault unavailable (Retry-After)'),
};

let cached: Json | undefined;

export function openApiDocument(): Json {
  cached ??= {
    openapi: '3.1.0',
    info: {
      title: 'kv-lease',
      version: '1.0.0',
      description:
        'Time-limited leases on Azure Key Vault firewall rules. Problem types: ' +
        Object.values(PROBLEM_KINDS)
          .map((kind) => `${PROBLEM_BASE}${kind.slug}`)
          .join(', '),
    },
    servers: [{ url: '/api' }],
    security: bearer,
    paths: {
      '/leases': {
        post: {
          operationId: 'grantLease',
          summary: "Lease the caller's IP (or, for Lease.Admin, a named ip) on a vault firewall",
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              schema: { type: 'string', maxLength: 128 },
            },
          ],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: ref('GrantRequest') } },
          },
          responses: {
            '201': ok('Granted: the vault holds the rule', 'Lease', {
              Location: { schema: { type: 'string' } },
            }),
            '200': ok('Idempotent repeat: the same active lease', 'Lease'),
            ...commonErrors,
            '404': problem('Unknown vault'),
            '409': problem(
              'Vault at capacity (1000 rules), or the caller holds LEASE_MAX_ACTIVE_PER_PRINCIPAL leases',
            ),
            '413': problem('Body over 16 KiB'),
            '415': problem('Not JSON'),
          },
        },
        get: {
          operationId: 'listLeases',
          parameters: queryParameters(ListQuery),
          responses: { '200': ok('Leases', 'LeaseList'), ...commonErrors },
        },
      },
      '/leases/{id}': {
        parameters: [leaseIdParameter],
        get: {
          operationId: 'getLease',
          responses: {
            '200': ok('The lease', 'Lease'),
            ...commonErrors,
            '404': problem('Unknown or not visible'),
          },
        },
        delete: {
          operationId: 'releaseLease',
          responses: {
            '200': ok('Released (or already ended)', 'Lease'),
            ...commonErrors,
            '404': problem('Unknown or not visible'),
          },
        },
      },
      '/leases/{id}/renew': {
        parameters: [leaseIdParameter],
        post: {
          operationId: 'renewLease',
          requestBody: {
            required: false,
            content: { 'application/json': { schema: ref('RenewRequest') } },
          },
          responses: {
            '200': ok('Renewed', 'Lease'),
            ...commonErrors,
            '404': problem('Unknown or not visible'),
            '409': problem('Lease not active'),
          },
        },
      },
      '/vaults': {
        get: {
          operationId: 'listVaults',
          responses: { '200': ok('Managed vaults', 'VaultList'), ...commonErrors },
        },
      },
      '/audit': {
        get: {
          operationId: 'listAudit',
          parameters: queryParameters(AuditQuery),
          responses: { '200': ok('Audit trail, newest first', 'AuditList'), ...commonErrors },
        },
      },
      '/whoami': {
        get: {
          operationId: 'whoami',
          summary:
            'Who the caller is to the broker, and the address a grant without ip would lease (changes nothing, not audited)',
          responses: {
            '200': ok('The caller as the broker sees it', 'WhoAmI'),
            '400': problem('A query parameter was sent'),
            '401': problem('No or bad token (WWW-Authenticate: Bearer)'),
            '403': problem("A user's token without the user_impersonation scope"),
            '503': problem('Tokens cannot be validated right now (Retry-After)'),
          },
        },
      },
      '/health': {
        get: {
          operationId: 'health',
          security: [],
          responses: {
            '200': ok('The lease store answers', 'Health'),
            '503': ok('The lease store does not answer', 'Health'),
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openApi',
          security: [],
          responses: { '200': { description: 'This document' } },
        },
      },
    },
    components: {
      securitySchemes: {
        entra: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'Entra ID access token with app roles Lease.Request, Lease.Read, Lease.Admin',
        },
      },
      schemas: {
        GrantRequest: schemaOf(GrantBody, 'input'),
        RenewRequest: schemaOf(RenewBody, 'input'),
        Lease: schemaOf(LeaseResource, 'output'),
        LeaseList: schemaOf(LeaseList, 'output'),
        VaultList: schemaOf(VaultList, 'output'),
        AuditList: schemaOf(AuditList, 'output'),
        WhoAmI: schemaOf(WhoAmIResource, 'output'),
        Health: schemaOf(Health, 'output'),
        Problem: schemaOf(ProblemSchema, 'output'),
      },
    },
  };
  return cached;
}
