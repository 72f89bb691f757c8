import { describe, expect, it } from 'vitest';

import { ConfigError, loadConfig, managedTargets } from '../../src/app/config';

const vault =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-One';
const base = {
  BROKER_VAULTS: vault,
  LEASE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
  AUTH_MODE: 'disabled',
};

describe('loadConfig', () => {
  it('When only the required settings are given, then the contract defaults apply', () => {
    const config = loadConfig(base);
    expect(config.BROKER_VAULTS).toEqual([
      {
        name: 'kv-one',
        kind: 'keyvault',
        resourceId: vault,
        subscriptionId: '00000000-0000-0000-0000-000000000000',
        resourceGroup: 'rg',
      },
    ]);
    expect(config).toMatchObject({
      AZURE_ARM_ENDPOINT: 'https://management.azure.com',
      LEASE_DEFAULT_TTL_SECONDS: 1200,
      LEASE_MIN_TTL_SECONDS: 60,
      LEASE_MAX_TTL_SECONDS: 7200,
      LEASE_MIN_PREFIX: 24,
      SWEEP_SCHEDULE: '0 */1 * * * *',
      PORT: 7071,
    });
    expect(
      loadConfig({ ...base, AUTH_MODE: undefined, AUTH_TENANT_ID: 't', AUTH_AUDIENCE: 'api://x' })
        .AUTH_MODE,
    ).toBe('entra');
  });

  it('When several settings are bad, then one error names every one of them', () => {
    expect(() =>
      loadConfig({
        BROKER_VAULTS: 'not-an-id',
        LEASE_MIN_TTL_SECONDS: '900',
        LEASE_MAX_TTL_SECONDS: '600',
        AUTH_MODE: 'entra',
      }),
    ).toThrowError(
      /BROKER_VAULTS[\s\S]*LEASE_STORAGE_CONNECTION_STRING[\s\S]*LEASE_MIN_TTL_SECONDS[\s\S]*AUTH_TENANT_ID[\s\S]*AUTH_AUDIENCE/,
    );
  });

  it('When two vaults share a name, then the configuration is refused', () => {
    const other = vault.replace('/rg/', '/rg2/');
    expect(() => loadConfig({ ...base, BROKER_VAULTS: `${vault},${other}` })).toThrowError(
      /unique/,
    );
  });

  describe('BROKER_TARGETS (contract §4)', () => {
    const id = (type: string, name: string, rg = 'rg') =>
      `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${rg}/providers/${type}/${name}`;
    const account = id('Microsoft.Storage/storageAccounts', 'sttfstate');
    const server = id('Microsoft.Sql/servers', 'sql-orders');

    it('When targets of every kind are listed beside BROKER_VAULTS, then each is managed once with its kind', () => {
      const config = loadConfig({ ...base, BROKER_TARGETS: `${account},${server},${vault}` });
      expect(managedTargets(config).map((target) => [target.name, target.kind])).toEqual([
        ['kv-one', 'keyvault'],
        ['sttfstate', 'storage'],
        ['sql-orders', 'sql'],
      ]);
      expect(
        managedTargets(loadConfig({ ...base, BROKER_VAULTS: '', BROKER_TARGETS: account })),
      ).toHaveLength(1);
    });

    it('When two targets of different kinds share a name, then the configuration is refused naming both', () => {
      const twin = id('Microsoft.Sql/servers', 'kv-one');
      expect(() => loadConfig({ ...base, BROKER_TARGETS: twin })).toThrowError(
        /BROKER_TARGETS: target names must be unique[^\n]*"kv-one" is both/,
      );
    });

    it('When an ID is of a kind the broker does not manage, or BROKER_VAULTS names another kind, then the configuration is refused', () => {
      expect(() =>
        loadConfig({ ...base, BROKER_TARGETS: id('Microsoft.Web/sites', 'app-one') }),
      ).toThrowError(/BROKER_TARGETS: .*not the resource ID of a kind the broker manages/);
      expect(() => loadConfig({ ...base, BROKER_VAULTS: account })).toThrowError(
        /BROKER_VAULTS: .*not a Key Vault resource ID.*other kinds go in BROKER_TARGETS/,
      );
      expect(() =>
        loadConfig({ ...base, BROKER_TARGETS: id('Microsoft.Storage/storageAccounts', 'St-Bad') }),
      ).toThrowError(/storage account name is 3-24 lower-case letters and digits/);
    });

    it('When neither list names a target, then the configuration is refused saying both', () => {
      expect(() => loadConfig({ ...base, BROKER_VAULTS: '' })).toThrowError(
        /BROKER_VAULTS: is required: set BROKER_TARGETS/,
      );
    });
  });

  it('When AUTH_MODE=disabled runs in Azure, then the broker refuses to start and says why', () => {
    expect(() => loadConfig({ ...base, WEBSITE_INSTANCE_ID: 'abc' })).toThrowError(ConfigError);
    expect(() => loadConfig({ ...base, WEBSITE_SITE_NAME: 'func-kv-lease' })).toThrowError(
      /running in Azure/,
    );
  });

  it('When Azure meets a static ARM token and plain-http endpoints, then one error names every one of them and why', () => {
    const entra = {
      ...base,
      AUTH_MODE: 'entra',
      AUTH_TENANT_ID: '22222222-2222-2222-2222-222222222222',
      AUTH_AUDIENCE: 'api://kv-lease',
      WEBSITE_SITE_NAME: 'func-kv-lease',
    };
    const bad = {
      ...entra,
      AZURE_ARM_TOKEN: 'static-token',
      AUTH_JWKS_URI: 'http://login.example/keys',
      AZURE_ARM_ENDPOINT: 'http://management.example',
    };
    let message = '';
    try {
      loadConfig(bad);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message.split('\n')).toEqual([
      'Invalid kv-lease configuration:',
      expect.stringMatching(/^- AZURE_ARM_TOKEN: is refused when running in Azure .*emulators/),
      expect.stringMatching(
        /^- AUTH_JWKS_URI: must be an https:\/\/ URL when running in Azure .*"http:\/\/login\.example\/keys"/,
      ),
      expect.stringMatching(
        /^- AZURE_ARM_ENDPOINT: must be an https:\/\/ URL when running in Azure .*"http:\/\/management\.example"/,
      ),
    ]);
    // The same settings outside Azure (a developer against an emulator) are accepted.
    const { WEBSITE_SITE_NAME: _marker, ...local } = bad;
    expect(loadConfig(local).AZURE_ARM_TOKEN).toBe('static-token');
    // In Azure, https endpoints and no token are accepted; an empty token counts as unset.
    const good = {
      ...entra,
      AZURE_ARM_TOKEN: '',
      AUTH_JWKS_URI: 'https://login.example/keys',
      AZURE_ARM_ENDPOINT: 'https://management.example',
    };
    expect(loadConfig(good).AZURE_ARM_ENDPOINT).toBe('https://management.example');
  });

  it('When Azure refusals meet other bad settings, then the one message names both kinds', () => {
    expect(() =>
      loadConfig({
        ...base,
        LEASE_MIN_PREFIX: '4',
        AZURE_ARM_TOKEN: 'static-token',
        WEBSITE_INSTANCE_ID: 'abc',
      }),
    ).toThrowError(
      /LEASE_MIN_PREFIX[\s\S]*AUTH_MODE: "disabled" is refused[\s\S]*AZURE_ARM_TOKEN: is refused/,
    );
  });
});
