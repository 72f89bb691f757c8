import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type RunningEmulator, startEmulator } from '../../dev/emulator/server';
import { rawRequest, type RawResponse, storageClient, uniqueAccountName } from './helpers';

const RG = 'rg-blob';
const CLIENT = '52.10.20.30';
const PROBE_HEADERS = { authorization: 'Bearer storage-token', 'x-ms-version': '2025-01-05' };

describe('Emulator: the blob data plane of each storage account', () => {
  let emulator: RunningEmulator;

  beforeEach(async () => {
    emulator = await startEmulator({ dataPlane: { clientAddress: CLIENT } });
  });

  afterEach(async () => {
    await emulator.close();
  });

  function createAccount(options: { dataRights?: boolean; defaultAction?: 'Allow' | 'Deny' } = {}) {
    const name = uniqueAccountName();
    const id = emulator.storage.create({
      resourceGroup: RG,
      name,
      networkAcls: { defaultAction: options.defaultAction ?? 'Deny' },
      ...(options.dataRights === undefined ? {} : { dataRights: options.dataRights }),
    });
    return { id, name };
  }

  function probe(
    name: string,
    headers: Record<string, string> = PROBE_HEADERS,
  ): Promise<RawResponse> {
    const endpoint = new URL(emulator.storage.blobEndpoint(name));
    return rawRequest(emulator, 'GET', `${endpoint.pathname}?comp=list&maxresults=1`, { headers });
  }

  async function allow(name: string, value: string): Promise<void> {
    await storageClient(emulator).storageAccounts.update(RG, name, {
      networkRuleSet: {
        defaultAction: 'Deny',
        ipRules: [{ iPAddressOrRange: value, action: 'Allow' }],
      },
    });
  }

  it('When no rule admits the client address, then the probe answers 403 AuthorizationFailure without the address; after a rule, 200', async () => {
    const account = createAccount();

    const before = await probe(account.name);
    await allow(account.name, CLIENT);
    const after = await probe(account.name);

    expect(before.status).toBe(403);
    expect(before.headers['x-ms-error-code']).toBe('AuthorizationFailure');
    expect(before.text).toContain('<Code>AuthorizationFailure</Code>');
    expect(before.text).not.toContain(CLIENT);
    expect(after.status).toBe(200);
    expect(after.text).toContain('<EnumerationResults');
    expect(emulator.storage.blobStats()).toMatchObject({ refused: 1, allowed: 1 });
  });

  it('When a range admits the address, then the probe passes; a rule for another address does not', async () => {
    const inRange = createAccount();
    const other = createAccount();

    await allow(inRange.name, '52.10.20.0/24');
    await allow(other.name, '52.10.21.1');

    expect((await probe(inRange.name)).status).toBe(200);
    expect((await probe(other.name)).headers['x-ms-error-code']).toBe('AuthorizationFailure');
  });

  it('When the propagation delay is set, then the rule admits the caller only after it', async () => {
    emulator.configureDataPlane({ propagationDelayMs: 400 });
    const account = createAccount();

    await allow(account.name, CLIENT);
    const early = await probe(account.name);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const late = await probe(account.name);

    expect(early.headers['x-ms-error-code']).toBe('AuthorizationFailure');
    expect(late.status).toBe(200);
  });

  it('When the token has no data rights, then past the firewall the probe answers AuthorizationPermissionMismatch', async () => {
    const account = createAccount({ dataRights: false });

    const before = await probe(account.name);
    await allow(account.name, CLIENT);
    const after = await probe(account.name);

    expect(before.headers['x-ms-error-code']).toBe('AuthorizationFailure');
    expect(after.status).toBe(403);
    expect(after.headers['x-ms-error-code']).toBe('AuthorizationPermissionMismatch');
  });

  it('When defaultAction is Allow, then any caller passes', async () => {
    const account = createAccount({ defaultAction: 'Allow' });

    expect((await probe(account.name)).status).toBe(200);
  });

  it('When public network access is disabled, then even an open firewall answers AuthorizationFailure', async () => {
    const name = uniqueAccountName();
    emulator.storage.create({
      resourceGroup: RG,
      name,
      publicNetworkAccess: 'Disabled',
      networkAcls: { defaultAction: 'Allow' },
    });

    const response = await probe(name);

    expect(response.status).toBe(403);
    expect(response.headers['x-ms-error-code']).toBe('AuthorizationFailure');
  });

  it('When the probe has no token or no x-ms-version, then it is rejected before the firewall', async () => {
    const account = createAccount();

    const noToken = await probe(account.name, { 'x-ms-version': '2025-01-05' });
    const noVersion = await probe(account.name, { authorization: 'Bearer t' });

    expect(noToken.status).toBe(401);
    expect(noToken.headers['x-ms-error-code']).toBe('NoAuthenticationInformation');
    expect(noToken.headers['www-authenticate']).toContain('storage.azure.com');
    expect(noVersion.status).toBe(400);
    expect(emulator.storage.blobStats()).toMatchObject({ rejected: 2, refused: 0 });
  });
});
