import { z } from 'zod';

import { PolicyRulesSchema, ruleLabel } from './auth/policy';
import { VAULT_NAME } from './domain/lease';

/**
 * Every setting of the broker, parsed once at start. A bad configuration fails
 * with one message naming every bad setting; nothing warns and carries on.
 * Documented in three places kept in sync: this schema, the README table and
 * `local.settings.sample.json` (plus the infra app settings).
 */

const VAULT_ID =
  /^\/subscriptions\/([0-9a-fA-F-]{36})\/resourceGroups\/([-\w._()]{1,90})\/providers\/Microsoft\.KeyVault\/vaults\/([a-zA-Z0-9-]{3,24})$/i;

export interface ManagedVault {
  /** Lower-case vault name: the API's handle for the vault. */
  name: string;
  resourceId: string;
  subscriptionId: string;
  resourceGroup: string;
}

function parseVaultId(id: string, ctx: z.RefinementCtx): ManagedVault | undefined {
  const match = VAULT_ID.exec(id.trim());
  const name = match?.[3]?.toLowerCase();
  if (!match || name === undefined || !VAULT_NAME.test(name)) {
    ctx.addIssue({
      code: 'custom',
      message: `"${id}" is not a Key Vault resource ID (/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>)`,
    });
    return undefined;
  }
  return {
    name,
    resourceId: id.trim(),
    subscriptionId: match[1] as string,
    resourceGroup: match[2] as string,
  };
}

const intSetting = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const optionalText = z
  .string()
  .trim()
  .transform((value) => (value === '' ? undefined : value))
  .optional();

/** `LEASE_POLICY`: JSON text, parsed and then validated rule by rule (see `src/auth/policy.ts`). */
const leasePolicy = z
  .string()
  .optional()
  .transform((text, ctx): unknown => {
    if (text === undefined || text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch (error) {
      ctx.addIssue({
        code: 'custom',
        message: `is not valid JSON (${error instanceof Error ? error.message : 'parse error'}); expected an array of rules like [{"vaults":["kv-prod"],"appIds":["<guid>"],"maxTtlSeconds":1800}]`,
      });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .array(z.unknown(), { error: 'must be a JSON array of rules' })
      .pipe(PolicyRulesSchema)
      .optional(),
  );

export const ConfigSchema = z
  .object({
    BROKER_VAULTS: z
      .string({ error: 'is required: comma-separated Key Vault resource IDs' })
      .transform((text, ctx) =>
        text
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part.length > 0)
          .map((part) => parseVaultId(part, ctx))
          .filter((vault): vault is ManagedVault => vault !== undefined),
      )
      .refine((vaults) => vaults.length > 0, 'must name at least one vault')
      .refine(
        (vaults) => new Set(vaults.map((vault) => vault.name)).size === vaults.length,
        'vault names must be unique: the API names a vault by its name',
      ),
    LEASE_STORAGE_CONNECTION_STRING: optionalText,
    LEASE_STORAGE__tableServiceUri: optionalText.pipe(z.url().optional()),
    LEASE_TABLE_NAME: z
      .string()
      .regex(
        /^[A-Za-z][A-Za-z0-9]{2,62}$/,
        'must be a Table Storage table name (3-63 letters and digits)',
      )
      .default('kvlease'),
    AZURE_ARM_ENDPOINT: z.url().default('https://management.azure.com'),
    AZURE_ARM_TOKEN: optionalText,
    AUTH_MODE: z.enum(['entra', 'disabled']).default('entra'),
    AUTH_TENANT_ID: optionalText,
    AUTH_AUDIENCE: optionalText.transform((text) =>
      text === undefined
        ? []
        : text
            .split(',')
            .map((part) => part.trim())
            .filter(Boolean),
    ),
    AUTH_ISSUER: optionalText,
    AUTH_JWKS_URI: optionalText.pipe(z.url().optional()),
    LEASE_DEFAULT_TTL_SECONDS: intSetting(1200, 1, 7 * 24 * 3600),
    LEASE_MIN_TTL_SECONDS: intSetting(60, 1, 7 * 24 * 3600),
    LEASE_MAX_TTL_SECONDS: intSetting(7200, 1, 7 * 24 * 3600),
    LEASE_MIN_PREFIX: intSetting(24, 8, 32),
    LEASE_APPLY_TIMEOUT_SECONDS: intSetting(30, 1, 200),
    LEASE_POLICY: leasePolicy,
    LEASE_MAX_ACTIVE_PER_PRINCIPAL: intSetting(20, 1, 1000),
    SWEEP_SCHEDULE: z.string().trim().min(1).default('0 */1 * * * *'),
    PORT: intSetting(7071, 0, 65535),
  })
  .superRefine((config, ctx) => {
    if (!config.LEASE_STORAGE_CONNECTION_STRING && !config.LEASE_STORAGE__tableServiceUri) {
      ctx.addIssue({
        code: 'custom',
        path: ['LEASE_STORAGE_CONNECTION_STRING'],
        message: 'set LEASE_STORAGE_CONNECTION_STRING or LEASE_STORAGE__tableServiceUri',
      });
    }
    const { LEASE_MIN_TTL_SECONDS: min, LEASE_MAX_TTL_SECONDS: max } = config;
    if (min > max) {
      ctx.addIssue({
        code: 'custom',
        path: ['LEASE_MIN_TTL_SECONDS'],
        message: 'must not exceed LEASE_MAX_TTL_SECONDS',
      });
    }
    if (config.LEASE_DEFAULT_TTL_SECONDS < min || config.LEASE_DEFAULT_TTL_SECONDS > max) {
      ctx.addIssue({
        code: 'custom',
        path: ['LEASE_DEFAULT_TTL_SECONDS'],
        message: `must lie within [LEASE_MIN_TTL_SECONDS, LEASE_MAX_TTL_SECONDS] = [${min}, ${max}]`,
      });
    }
    const managed = new Set(config.BROKER_VAULTS.map((vault) => vault.name));
    const rules = config.LEASE_POLICY ?? [];
    rules.forEach((rule, index) => {
      const label = ruleLabel(rules, rule);
      for (const vault of rule.vaults) {
        if (vault !== '*' && !managed.has(vault)) {
          ctx.addIssue({
            code: 'custom',
            path: ['LEASE_POLICY', index, 'vaults'],
            message: `rule ${label} names "${vault}", which is not in BROKER_VAULTS`,
          });
        }
      }
      const cap = rule.maxTtlSeconds;
      if (cap !== undefined && (cap < min || cap > max)) {
        ctx.addIssue({
          code: 'custom',
          path: ['LEASE_POLICY', index, 'maxTtlSeconds'],
          message: `rule ${label}: ${cap} lies outside [LEASE_MIN_TTL_SECONDS, LEASE_MAX_TTL_SECONDS] = [${min}, ${max}]`,
        });
      }
    });
    if (config.AUTH_MODE === 'entra') {
      if (!config.AUTH_TENANT_ID) {
        ctx.addIssue({
          code: 'custom',
          path: ['AUTH_TENANT_ID'],
          message: 'is required when AUTH_MODE=entra',
        });
      }
      if (config.AUTH_AUDIENCE.length === 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['AUTH_AUDIENCE'],
          message: 'is required when AUTH_MODE=entra',
        });
      }
    }
  });

export type Config = z.output<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Environment variables that say the process runs in Azure (Functions host / App Service). */
const AZURE_MARKERS = ['WEBSITE_INSTANCE_ID', 'WEBSITE_SITE_NAME'] as const;

export function runsInAzure(env: NodeJS.ProcessEnv): boolean {
  return AZURE_MARKERS.some((name) => (env[name] ?? '') !== '');
}

/** `LEASE_POLICY[0].oids[1]`: the setting, then where inside its JSON value. */
function settingPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, index) =>
      typeof part === 'number' ? `[${part}]` : `${index === 0 ? '' : '.'}${String(part)}`,
    )
    .join('');
}

/** Parse the environment once; throws a ConfigError naming every bad setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const result = ConfigSchema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map(
      (issue) => `- ${settingPath(issue.path) || '(settings)'}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid kv-lease configuration:\n${lines.join('\n')}`);
  }
  if (result.data.AUTH_MODE === 'disabled' && runsInAzure(env)) {
    throw new ConfigError(
      'Invalid kv-lease configuration:\n- AUTH_MODE: "disabled" is refused when running in Azure ' +
        '(WEBSITE_INSTANCE_ID/WEBSITE_SITE_NAME is set): every caller would get every role. Use AUTH_MODE=entra.',
    );
  }
  return result.data;
}
