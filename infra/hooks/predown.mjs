#!/usr/bin/env node
/* global process -- Node.js globals */
// azd predown hook: removes what `azd down` leaves behind because it lives
// outside the resource group azd deletes:
//   1. the API's app registration, when this deployment created it
//      (KV_LEASE_APP_OBJECT_ID is set only then; a brought registration is
//      never touched), then purges it from the directory's deleted items so
//      that its App ID URI is free for the next `azd up` (set
//      KV_LEASE_KEEP_DELETED_APP=true to keep it restorable for 30 days);
//   2. the broker identity's role assignment on each managed vault (those
//      live in the vaults' resource groups).
// Custom role definitions can go only once their assignments are gone: the
// postdown hook removes them after azd deleted the resource group.
//
//   node infra/hooks/predown.mjs [--dry-run]
import { az, envValue, log, options, vaultIds, warn } from './lib.mjs';

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
const vaults = vaultIds();
if (principalId === '') {
  log('Vault role assignments: KV_LEASE_IDENTITY_PRINCIPAL_ID is empty, nothing to remove.');
} else {
  for (const vault of vaults) {
    step(`role assignments of ${principalId} on ${vault}`, [
      'role',
      'assignment',
      'delete',
      '--assignee',
      principalId,
      '--scope',
      vault,
    ]);
  }
}

if (failures > 0) {
  warn(
    `${failures} item(s) could not be removed; remove them by hand (see infra/README.md, "Remove everything").`,
  );
  process.exit(1);
}
