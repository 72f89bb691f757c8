#!/usr/bin/env node
/* global process -- Node.js globals */
// azd postdown hook: once azd deleted the resource group (and with it the
// role assignments inside it), removes the custom role definitions this
// deployment created; they live in the subscription and outlast the group.
//
//   node infra/hooks/postdown.mjs [--dry-run]
import { az, envValue, log, options, warn } from './lib.mjs';

const { dryRun } = options();
let failures = 0;

const subscription = envValue('AZURE_SUBSCRIPTION_ID');
/** A custom role of custom-role.bicep, recorded by main.bicep as its GUID in this subscription. */
const inThisSubscription = (name) =>
  envValue(name) && subscription
    ? `/subscriptions/${subscription}/providers/Microsoft.Authorization/roleDefinitions/${envValue(name)}`
    : '';
const roles = [
  // The audit appender (rbac.bicep): a full role definition ID.
  { what: 'audit appender role', id: envValue('KV_LEASE_AUDIT_ROLE_DEFINITION_ID') },
  // The vault firewall writer (custom-role.bicep): a GUID in this subscription.
  { what: 'vault firewall writer role', id: inThisSubscription('KV_LEASE_VAULT_ROLE_ID') },
  // The roles of the other targets (BROKER_TARGETS), recorded only when deployed.
  { what: 'storage firewall writer role', id: inThisSubscription('KV_LEASE_STORAGE_ROLE_ID') },
  { what: 'SQL firewall writer role', id: inThisSubscription('KV_LEASE_SQL_ROLE_ID') },
  { what: 'service tag reader role', id: inThisSubscription('KV_LEASE_SERVICE_TAG_ROLE_ID') },
];

for (const role of roles) {
  if (role.id === '') {
    log(`${role.what}: none recorded, nothing to remove.`);
    continue;
  }
  const result = az(
    [
      'role',
      'definition',
      'delete',
      '--name',
      role.id.split('/').pop(),
      '--scope',
      role.id.split('/providers/')[0],
    ],
    { dryRun },
  );
  if (result.ok) {
    log(`${dryRun ? '[dry-run] would remove' : 'Removed'}: ${role.what} ${role.id}`);
  } else {
    failures += 1;
    warn(`could not remove the ${role.what} ${role.id}: ${result.stderr.trim() || 'az failed'}`);
  }
}

if (failures > 0) process.exit(1);
