import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ConfigError, loadConfig } from '../../src/app/config';
import { decide, type PolicyRule } from '../../src/policy/lease-policy';

const SUB = '00000000-0000-0000-0000-000000000000';
const vault = (name: string) =>
  `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/${name}`;
const OID = '11111111-2222-4333-8444-555555555555';
const APP = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';

function env(extra: Record<string, string>): Record<string, string> {
  return {
    BROKER_VAULTS: `${vault('kv-prod')},${vault('kv-dev')}`,
    LEASE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
    AUTH_MODE: 'disabled',
    ...extra,
  };
}

function failure(extra: Record<string, string>): string {
  try {
    loadConfig(env(extra));
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected the configuration to be refused');
}

describe('LEASE_POLICY in the configuration', () => {
  it('When unset or blank, then there is no policy', () => {
    expect(loadConfig(env({})).LEASE_POLICY).toBeUndefined();
    expect(loadConfig(env({ LEASE_POLICY: '  ' })).LEASE_POLICY).toBeUndefined();
  });

  it('When valid, then rules are parsed with names and ids in lower case', () => {
    const config = loadConfig(
      env({
        LEASE_POLICY: JSON.stringify([
          { name: 'prod', vaults: ['KV-Prod'], appIds: [APP.toUpperCase()], maxTtlSeconds: 1800 },
          { vaults: ['*'], oids: [OID, '*'] },
        ]),
      }),
    );
    expect(config.LEASE_POLICY).toEqual([
      { name: 'prod', vaults: ['kv-prod'], appIds: [APP], maxTtlSeconds: 1800 },
      { vaults: ['*'], oids: [OID, '*'] },
    ]);
  });

  it.each([
    [
      'not JSON',
      '[{vaults: ["kv-prod"]}]',
      /- LEASE_POLICY: is not valid JSON \(.+\); expected an array of rules like/,
    ],
    [
      'an object, not an array',
      '{"vaults":["kv-prod"]}',
      /- LEASE_POLICY: must be a JSON array of rules/,
    ],
    ['a rule that is not an object', '[42]', /- LEASE_POLICY\[0\]: Invalid input: expected object/],
    [
      'a rule without vaults',
      `[{"oids":["${OID}"]}]`,
      /- LEASE_POLICY\[0\]\.vaults: Invalid input: expected array/,
    ],
    [
      'an empty vault list',
      `[{"vaults":[],"oids":["${OID}"]}]`,
      /- LEASE_POLICY\[0\]\.vaults: must name at least one vault/,
    ],
    [
      'a malformed vault name',
      `[{"vaults":["kv_prod"],"oids":["${OID}"]}]`,
      /- LEASE_POLICY\[0\]\.vaults\[0\]: must be a target name from BROKER_TARGETS or BROKER_VAULTS, or "\*"/,
    ],
    [
      'an unmanaged vault',
      `[{"name":"x","vaults":["kv-test"],"oids":["${OID}"]}]`,
      /- LEASE_POLICY\[0\]\.vaults: rule "x" names "kv-test", which is not in BROKER_TARGETS or BROKER_VAULTS/,
    ],
    [
      'no principal at all',
      '[{"vaults":["kv-prod"]}]',
      /- LEASE_POLICY\[0\]: a rule must name "oids" or "appIds" \(or both\)/,
    ],
    [
      'an empty oid list',
      '[{"vaults":["kv-prod"],"oids":[]}]',
      /- LEASE_POLICY\[0\]\.oids: must not be empty/,
    ],
    [
      'a display name instead of an oid',
      '[{"vaults":["kv-prod"],"oids":["build-agent"]}]',
      /- LEASE_POLICY\[0\]\.oids\[0\]: must be a GUID \(the token's oid\) or "\*"/,
    ],
    [
      'a URI instead of an app id',
      '[{"vaults":["kv-prod"],"appIds":["api://kv-lease"]}]',
      /- LEASE_POLICY\[0\]\.appIds\[0\]: must be a GUID \(the token's appid\/azp\) or "\*"/,
    ],
    [
      'a misspelt field',
      `[{"vaults":["kv-prod"],"oids":["${OID}"],"maxTtl":60}]`,
      /- LEASE_POLICY\[0\]: Unrecognized key: "maxTtl"/,
    ],
    [
      'a cap above LEASE_MAX_TTL_SECONDS',
      `[{"vaults":["kv-prod"],"oids":["${OID}"],"maxTtlSeconds":7201}]`,
      /- LEASE_POLICY\[0\]\.maxTtlSeconds: rule #1: 7201 lies outside \[LEASE_MIN_TTL_SECONDS, LEASE_MAX_TTL_SECONDS\] = \[60, 7200\]/,
    ],
    [
      'a cap below LEASE_MIN_TTL_SECONDS',
      `[{"vaults":["kv-prod"],"oids":["${OID}"],"maxTtlSeconds":30}]`,
      /rule #1: 30 lies outside/,
    ],
    [
      'a fractional cap',
      `[{"vaults":["kv-prod"],"oids":["${OID}"],"maxTtlSeconds":90.5}]`,
      /- LEASE_POLICY\[0\]\.maxTtlSeconds: /,
    ],
  ])(
    'When it is %s, then the broker refuses to start and names the place',
    (_name, policy, message) => {
      expect(failure({ LEASE_POLICY: policy })).toMatch(message);
    },
  );

  it('When several things are wrong, then one message names every one of them', () => {
    const message = failure({
      LEASE_MIN_PREFIX: '99',
      LEASE_POLICY: `[{"vaults":["kv-test"],"oids":["nobody"]},{"vaults":["kv-dev"],"appIds":["${APP}"],"maxTtlSeconds":1e9}]`,
    });
    expect(message.split('\n').filter((line) => line.startsWith('- '))).toHaveLength(4);
    expect(message).toMatch(/LEASE_MIN_PREFIX/);
    expect(message).toMatch(/LEASE_POLICY\[0\]\.oids\[0\]/);
    expect(message).toMatch(/LEASE_POLICY\[0\]\.vaults: rule #1 names "kv-test"/);
    expect(message).toMatch(/LEASE_POLICY\[1\]\.maxTtlSeconds/);
  });
});

describe('LEASE_MAX_ACTIVE_PER_PRINCIPAL in the configuration', () => {
  it('When unset, then 20; when set, a whole number from 1 to 1000', () => {
    expect(loadConfig(env({})).LEASE_MAX_ACTIVE_PER_PRINCIPAL).toBe(20);
    expect(
      loadConfig(env({ LEASE_MAX_ACTIVE_PER_PRINCIPAL: '5' })).LEASE_MAX_ACTIVE_PER_PRINCIPAL,
    ).toBe(5);
    for (const bad of ['0', '1001', '2.5', 'many']) {
      expect(failure({ LEASE_MAX_ACTIVE_PER_PRINCIPAL: bad })).toMatch(
        /- LEASE_MAX_ACTIVE_PER_PRINCIPAL: /,
      );
    }
  });
});

describe('decide', () => {
  const rules: PolicyRule[] = [
    { name: 'prod', vaults: ['kv-prod'], appIds: [APP], maxTtlSeconds: 900 },
    { vaults: ['kv-prod'], oids: [OID], maxTtlSeconds: 1800 },
    { name: 'dev', vaults: ['kv-dev'], oids: ['*'], maxTtlSeconds: 600 },
    { name: 'everywhere', vaults: ['*'], appIds: ['99999999-9999-4999-8999-999999999999'] },
  ];

  it('When there is no policy, then everyone may lease everything up to the global maximum', () => {
    expect(decide(undefined, 'kv-prod', { id: 'anyone' }, 7200)).toEqual({
      allowed: true,
      maxTtlSeconds: 7200,
      rules: [],
    });
  });

  it('When rules match by application id or oid (any case), then the largest cap of the matching rules applies', () => {
    expect(decide(rules, 'kv-prod', { id: 'x', appId: APP.toUpperCase() }, 7200)).toEqual({
      allowed: true,
      maxTtlSeconds: 900,
      rules: ['"prod"'],
    });
    expect(decide(rules, 'kv-prod', { id: OID, appId: APP }, 7200)).toEqual({
      allowed: true,
      maxTtlSeconds: 1800,
      rules: ['"prod"', '#2'],
    });
  });

  it('When a rule says "*", then it matches any caller or any vault; a rule without a cap allows the global maximum', () => {
    expect(decide(rules, 'kv-dev', { id: 'someone' }, 7200)).toMatchObject({
      allowed: true,
      maxTtlSeconds: 600,
    });
    expect(
      decide(rules, 'kv-other', { id: 'x', appId: '99999999-9999-4999-8999-999999999999' }, 3600),
    ).toMatchObject({ allowed: true, maxTtlSeconds: 3600 });
  });

  it('When no rule matches, then it is refused, even for a caller matched on another vault', () => {
    expect(decide(rules, 'kv-prod', { id: 'someone' }, 7200)).toEqual({ allowed: false });
    expect(decide(rules, 'kv-other', { id: OID, appId: APP }, 7200)).toEqual({ allowed: false });
    expect(decide([], 'kv-prod', { id: OID }, 7200)).toEqual({ allowed: false });
  });
});

describe('local.settings.sample.json', () => {
  it('When its values are loaded as the environment, then the configuration, policy included, is valid', () => {
    const sample = JSON.parse(
      readFileSync(join(__dirname, '..', '..', 'local.settings.sample.json'), 'utf8'),
    ) as { Values: Record<string, string> };
    const config = loadConfig(sample.Values);
    expect(config.LEASE_POLICY?.length).toBeGreaterThan(0);
    expect(config.LEASE_MAX_ACTIVE_PER_PRINCIPAL).toBe(20);
  });
});
