import { z } from 'zod';

import { type ManagedVault, VAULT_NAME } from '../domain/vault';
import { PolicyRulesSchema, ruleLabel } from '../policy/lease-policy';
import type { LeaseTerms } from '../policy/terms';

/**
 * Every setting of the broker, parsed once at start. A bad configuration fails
 * with one message naming every bad setting; nothing warns and carries on.
 * Documented in three places kept in sync: this schema, the README table and
 * `local.settings.sample.json` (plus the infra app settings).
 */

const VAULT_ID =
  /^\/subscriptions\/([0-9a-fA-F-]{36})\/resourceGroups\/([-\w._()]{1,90})\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)$/i;

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

/** `LEASE_POLICY`: JSON text, parsed and then validated rule by rule (see `src/policy/lease-policy.ts`). */
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

const ConfigFields = z.object({
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
  // NOTE: placeholder so the infra tests see the setting main.bicep deploys;
  // the parsing of BROKER_TARGETS (kinds, unique names) is another change.
  BROKER_TARGETS: optionalText,
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
  LEASE_HISTORY_DAYS: intSetting(90, 1, 3650),
  SWEEP_SCHEDULE: z.string().trim().min(1).default('0 */1 * * * *'),
  PORT: intSetting(7071, 0, 65535),
});

type Fields = z.output<typeof ConfigFields>;
type IssueSink = Pick<z.RefinementCtx, 'addIssue'>;

/**
 * Checks that span settings. loadConfig also runs them on the settings that
 * did parse when others did not, so one message names every problem: each
 * check runs only when the settings it reads are valid (`in config`).
 */
function crossFieldIssues(config: Partial<Fields>, ctx: IssueSink): void {
  const has = (...keys: (keyof Fields)[]) => keys.every((key) => key in config);
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: 'custom', path, message });

  if (
    has('LEASE_STORAGE_CONNECTION_STRING', 'LEASE_STORAGE__tableServiceUri') &&
    !config.LEASE_STORAGE_CONNECTION_STRING &&
    !config.LEASE_STORAGE__tableServiceUri
  ) {
    issue(
      ['LEASE_STORAGE_CONNECTION_STRING'],
      'set LEASE_STORAGE_CONNECTION_STRING or LEASE_STORAGE__tableServiceUri',
    );
  }
  const {
    LEASE_MIN_TTL_SECONDS: min,
    LEASE_MAX_TTL_SECONDS: max,
    LEASE_DEFAULT_TTL_SECONDS: fallback,
  } = config;
  const bounds = min !== undefined && max !== undefined;
  if (bounds && min > max)
    issue(['LEASE_MIN_TTL_SECONDS'], 'must not exceed LEASE_MAX_TTL_SECONDS');
  if (bounds && fallback !== undefined && (fallback < min || fallback > max)) {
    issue(
      ['LEASE_DEFAULT_TTL_SECONDS'],
      `must lie within [LEASE_MIN_TTL_SECONDS, LEASE_MAX_TTL_SECONDS] = [${min}, ${max}]`,
    );
  }
  if (has('BROKER_VAULTS', 'LEASE_POLICY') && config.BROKER_VAULTS) {
    const managed = new Set(config.BROKER_VAULTS.map((vault) => vault.name));
    const rules = config.LEASE_POLICY ?? [];
    rules.forEach((rule, index) => {
      const label = ruleLabel(rules, rule);
      for (const vault of rule.vaults) {
        if (vault !== '*' && !managed.has(vault)) {
          issue(
            ['LEASE_POLICY', index, 'vaults'],
            `rule ${label} names "${vault}", which is not in BROKER_VAULTS`,
          );
        }
      }
      const cap = rule.maxTtlSeconds;
      if (bounds && cap !== undefined && (cap < min || cap > max)) {
        issue(
          ['LEASE_POLICY', index, 'maxTtlSeconds'],
          `rule ${label}: ${cap} lies outside [LEASE_MIN_TTL_SECONDS, LEASE_MAX_TTL_SECONDS] = [${min}, ${max}]`,
        );
      }
    });
  }
  if (has('AUTH_MODE', 'AUTH_TENANT_ID', 'AUTH_AUDIENCE') && config.AUTH_MODE === 'entra') {
    if (!config.AUTH_TENANT_ID) issue(['AUTH_TENANT_ID'], 'is required when AUTH_MODE=entra');
    if (config.AUTH_AUDIENCE?.length === 0)
      issue(['AUTH_AUDIENCE'], 'is required when AUTH_MODE=entra');
  }
}

export const ConfigSchema = ConfigFields.superRefine((config, ctx) =>
  crossFieldIssues(config, ctx),
);

export type Config = z.output<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Environment variables that say the process runs in Azure (Functions host / App Service). */
const AZURE_MARKERS = ['WEBSITE_INSTANCE_ID', 'WEBSITE_SITE_NAME'] as const;
const IN_AZURE = 'when running in Azure (WEBSITE_INSTANCE_ID/WEBSITE_SITE_NAME is set)';

export function runsInAzure(env: NodeJS.ProcessEnv): boolean {
  return AZURE_MARKERS.some((name) => (env[name] ?? '') !== '');
}

/**
 * Settings meant for a developer's machine that must never reach a deployed
 * broker: each would hand a caller (or anyone on the network path) what the
 * broker guards. Checked on the settings that parsed, like crossFieldIssues.
 */
function azureIssues(config: Partial<Fields>, ctx: IssueSink): void {
  const issue = (path: string, message: string) =>
    ctx.addIssue({ code: 'custom', path: [path], message });
  if (config.AUTH_MODE === 'disabled') {
    issue(
      'AUTH_MODE',
      `"disabled" is refused ${IN_AZURE}: every caller would get every role. Use AUTH_MODE=entra.`,
    );
  }
  if (config.AZURE_ARM_TOKEN !== undefined) {
    issue(
      'AZURE_ARM_TOKEN',
      `is refused ${IN_AZURE}: a static Resource Manager token is for emulators. Unset it; the broker then uses its managed identity.`,
    );
  }
  for (const name of ['AUTH_JWKS_URI', 'AZURE_ARM_ENDPOINT'] as const) {
    const value = config[name];
    if (value !== undefined && new URL(value).protocol !== 'https:') {
      issue(
        name,
        `must be an https:// URL ${IN_AZURE}, not "${value}": over plain http anyone on the path can forge what the broker trusts.`,
      );
    }
  }
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
  const issues: { path: readonly PropertyKey[]; message: string }[] = result.success
    ? []
    : [...result.error.issues];
  // The fields that parsed: zod skips the cross-field checks when a field
  // failed, so they run here on the rest, keeping each message once.
  const parsed: Partial<Fields> = {};
  if (result.success) Object.assign(parsed, result.data);
  else {
    for (const [key, field] of Object.entries(ConfigFields.shape)) {
      const one = (field as z.ZodType).safeParse(env[key]);
      if (one.success) Object.assign(parsed, { [key]: one.data });
    }
  }
  const seen = new Set(issues.map((issue) => `${issue.path.join('.')}|${issue.message}`));
  const sink: IssueSink = {
    addIssue: (issue) => {
      if (typeof issue === 'string') return;
      const path = issue.path ?? [];
      const message = issue.message ?? '';
      const key = `${path.join('.')}|${message}`;
      if (!seen.has(key)) {
        seen.add(key);
        issues.push({ path, message });
      }
    },
  };
  if (!result.success) crossFieldIssues(parsed, sink);
  if (runsInAzure(env)) azureIssues(parsed, sink);
  if (!result.success || issues.length > 0) {
    const lines = issues.map(
      (issue) => `- ${settingPath(issue.path) || '(settings)'}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid kv-lease configuration:\n${lines.join('\n')}`);
  }
  return result.data;
}

/**
 * The settings as the lease use cases see them, in domain names. The
 * per-caller cap does not apply with AUTH_MODE=disabled: every caller is the
 * one local-dev principal, so a cap would be a global one.
 */
export function leaseTerms(config: Config): LeaseTerms {
  return {
    ttl: {
      minSeconds: config.LEASE_MIN_TTL_SECONDS,
      maxSeconds: config.LEASE_MAX_TTL_SECONDS,
      defaultSeconds: config.LEASE_DEFAULT_TTL_SECONDS,
    },
    minPrefix: config.LEASE_MIN_PREFIX,
    applyTimeoutMs: config.LEASE_APPLY_TIMEOUT_SECONDS * 1000,
    maxActivePerPrincipal:
      config.AUTH_MODE === 'disabled'
        ? Number.POSITIVE_INFINITY
        : config.LEASE_MAX_ACTIVE_PER_PRINCIPAL,
    rules: config.LEASE_POLICY,
  };
}
