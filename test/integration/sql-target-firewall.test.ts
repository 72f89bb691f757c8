import { afterAll, beforeAll } from 'vitest';

import { startEmulator } from '../../dev/emulator/server';
import type { SqlFirewallRule } from '../../dev/emulator/sql/firewall-rules';
import type { RunningEmulator } from '../../dev/emulator/types';
import type { ManagedTarget } from '../../src/domain/target';
import { SqlFirewall } from '../../src/targets/sql/firewall';
import { sqlKind } from '../../src/targets/sql/kind';
import { targetFirewallContract } from '../contracts/target-firewall.contract';

const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
const RG = 'rg-test';
/** Rules the broker never touches: they must be exactly as before after every write. */
const FOREIGN: SqlFirewallRule[] = [
  { name: 'AllowAllWindowsAzureIps', startIpAddress: '0.0.0.0', endIpAddress: '0.0.0.0' },
  { name: 'office', startIpAddress: '20.40.61.0', endIpAddress: '20.40.61.255' },
];
const LEASED = {
  name: 'kvlease-20.40.60.80-32',
  startIpAddress: '20.40.60.80',
  endIpAddress: '20.40.60.80',
};

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.close();
});

let counter = 0;
function sqlServer(name: string): ManagedTarget {
  const parsed = sqlKind.parseId(
    `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.Sql/servers/${name}`,
  );
  if (typeof parsed !== 'object') throw new Error(`not a SQL server id: ${String(parsed)}`);
  return parsed;
}

// NOTE: SQL rules are the broker's by name: the target's `existing` rule is a kvlease- one;
// the foreign rules are "everything else" (with the server's public network access).
targetFirewallContract('SqlFirewall against the emulator', () => {
  counter += 1;
  const target = sqlServer(`sql-tfc-${counter}-${Math.random().toString(36).slice(2, 8)}`);
  emulator.sql.create({
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RG,
    name: target.name,
    firewallRules: [...FOREIGN, LEASED],
  });
  return {
    kind: sqlKind,
    firewall: new SqlFirewall({
      endpoint: emulator.url,
      credential: {
        getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }),
      },
      tlsCa: emulator.caPem,
      maxRetries: 0,
    }),
    target,
    existing: ['20.40.60.80/32'],
    missing: sqlServer('sql-tfc-missing'),
    others: () =>
      emulator.sql
        .listFirewallRules(target.resourceId)
        .filter((rule) => !rule.name.toLowerCase().startsWith('kvlease-')),
    // Azure SQL accepts any IPv4 range, private ones included: what it cannot hold is not IPv4.
    invalidRule: '2001:db8::/64',
    // Per-rule: no whole-list write to overlap, so no 409 to test.
  };
});
