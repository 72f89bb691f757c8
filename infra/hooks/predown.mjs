#!/usr/bin/env node
/* global process -- Node.js globals */
// azd predown hook: removes what `azd down` leaves behind because it lives
// outside the resource group azd deletes:
//   1. the API's app registration, when this deployment created it
//      (KV_LEASE_APP_OBJECT_ID is set only then; a brought registration is
//      never touched), then purges it from the directory's deleted items so
//      that its App ID URI is free for the next `azd up` (set
//      KV_LEASE_KEEP_DELETED_APP=true to keep it restorable for 30 days);
//   2. the broker identity's role assignment on each managed resource, vaults
//      (KV_LEASE_VAULT_IDS) and the other targets (KV_LEASE_TARGET_IDS) alike
//      (those live in the resources' resource groups), and its service tag
//      reader assignment on the subscription of each managed Storage account.
// Custom role definitions can go only once their assignments are gone: the
// postdown hook removes them after azd deleted the resource group.
//
//   node infra/hooks/predown.mjs [--dry-run]
import { az, envValue, isStorageAccount, log, options, targetIds, vaultIds, warn } from './lib.mjs';

const { dryRun } = options();
let failures = 0;

function step(what, args, { tolerate = [] } = {}) {
  const result = az(args, { dryRun });
  if (result.ok || tolerate.some((pattern) => pattern.test(result.stderr))) {
    log(`${dryRun ? '[dry-run] would remove' : 'Removed'}: ${what}`);
    return;
  }
  failures += 1;
  warn(`could not remove ${what}: ${result.stderr.trim() || 'az failed'}`);
}

const appObjectId = envValue('KV_LEASE_APP_OBJECT_ID');
if (appObjectId === '') {
  log(
    'App registration: not created by this deployment (KV_LEASE_APP_OBJECT_ID is empty), left alone.',
  );
} else {
  const graph = 'https://graph.microsoft.com/v1.0';
  const notFound = [/Request_ResourceNotFound/i, /does not exist/i, /404/];
  step(
    `app registration ${appObjectId}`,
    ['rest', '--method', 'DELETE', '--url', `${graph}/applications/${appObjectId}`],
    { tolerate: notFound },
  );
  if (envValue('KV_LEASE_KEEP_DELETED_APP').toLowerCase() === 'true') {
    log(
      'App registration kept in deleted items (KV_LEASE_KEEP_DELETED_APP=true): restorable for 30 days.',
    );
  } else {
    step(
      `deleted app registration ${appObjectId} (purge)`,
      ['rest', '--method', 'DELETE', '--url', `${graph}/directory/deletedItems/${appObjectId}`],
      { tolerate: notFound },
    );
  }
}

const principalId = envValue('KV_LEASE_IDENTITY_PRINCIPAL_ID');
// A vault may be listed in both settings: one assignment, removed once.
const managed = [
  ...new Map([...vaultIds(), ...targetIds()].map((id) => [id.toLowerCase(), id])).values(),
];
const storageSubscriptions = [
  ...new Set(managed.filter(isStorageAccount).map((id) => id.split('/')[2].toLowerCase())),
];
const serviceTagRole = envValue('KV_LEASE_SERVICE_TAG_ROLE_ID');
if (principalId === '') {
  log(
    'Role assignments on managed resources: KV_LEASE_IDENTITY_PRINCIPAL_ID is empty, nothing to remove.',
  );
} else {
  for (const id of managed) {
    step(`role assignments of ${principalId} on ${id}`, [
      'role',
      'assignment',
      'delete',
      '--assignee',
      principalId,
      '--scope',
      id,
    ]);
  }
  // At a subscription, only the service tag reader: nothing else of the identity's is there.
  for (const subscription of serviceTagRole === '' ? [] : storageSubscriptions) {
    step(`service tag reader of ${principalId} on /subscriptions/${subscription}`, [
      'role',
      'assignment',
      'delete',
      '--assignee',
      principalId,
      '--role',
      serviceTagRole,
      '--scope',
      `/subscriptions/${subscription}`,
    ]);
  }
}

if (failures > 0) {
  warn(
    `${failures} item(s) could not be removed; remove them by hand (see infra/README.md, "Remove everything").`,
  );
  process.exit(1);
}
