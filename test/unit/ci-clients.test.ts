import { describe, expect, it } from 'vitest';

import { chooseCredential } from '../../clients/azure-pipelines/task/src/credential';
import type { BrokerClient, Lease } from '../../clients/lib/index';
import { ProblemError } from '../../clients/lib/index';
import {
  brokerScope,
  clampReason,
  grantStep,
  releaseStep,
  STATE,
  type StateStore,
} from '../../clients/pipeline/lease-step';
import { flag, optionalSeconds, required, targetName } from '../../clients/pipeline/settings';
import {
  formatFileCommand,
  parseFileCommands,
  parseLoggingCommands,
} from '../../dev/ci/file-commands';

/**
 * Pure logic of the CI clients, including what differs on Windows agents
 * (CRLF in the runner's files and the agent's stdout, backslashes in paths).
 * Their behaviour against the real broker is in test/clients/.
 */

describe('runner file commands (GITHUB_STATE, GITHUB_OUTPUT)', () => {
  it('When @actions/core wrote the file on Windows (CRLF), Then every value reads without a stray CR', () => {
    const text =
      formatFileCommand('kv_lease_key', 'k-1', 'ghadelimiter_1', '\r\n') +
      formatFileCommand('kv_lease_request', '{"vault":"kv-a"}', 'ghadelimiter_2', '\r\n');
    expect(parseFileCommands(text)).toEqual({
      kv_lease_key: 'k-1',
      kv_lease_request: '{"vault":"kv-a"}',
    });
  });

  it('When a value spans lines or holds an equals sign, Then it reads back whole, with either line ending', () => {
    for (const eol of ['\n', '\r\n']) {
      const text = `${formatFileCommand('multi', 'a\nb', 'EOF_1', eol)}plain=x=y${eol}`;
      expect(parseFileCommands(text)).toEqual({ multi: 'a\nb', plain: 'x=y' });
    }
  });

  it('When a heredoc never closes, Then the parser says so instead of guessing', () => {
    expect(() => parseFileCommands('name<<EOF\nvalue\n')).toThrow(/no closing delimiter/);
  });
});

describe('agent logging commands', () => {
  it('When task-lib escaped a value and Windows ended the line with CRLF, Then the value reads back as set', () => {
    const stdout =
      '##vso[task.settaskvariable variable=kv_lease_request;issecret=false;]{"reason":"a%AZP25b"}\r\n' +
      '##vso[task.setvariable variable=leaseId;isOutput=true;issecret=false;]L1\r\n' +
      '##vso[task.complete result=Failed;]line one%0Aline%3B two\r\n';
    const commands = parseLoggingCommands(stdout);
    expect(commands.map((c) => [c.command, c.properties.variable, c.message])).toEqual([
      ['task.settaskvariable', 'kv_lease_request', '{"reason":"a%b"}'],
      ['task.setvariable', 'leaseId', 'L1'],
      ['task.complete', undefined, 'line one\nline%3B two'],
    ]);
    expect(commands[1]?.properties.isOutput).toBe('true');
  });
});

describe('bundle paths', () => {
  it('When a Windows checkout builds the bundles, Then the banner path uses forward slashes, so dist/ is byte-identical', async () => {
    const { posix } = await import('../../clients/build.mjs');
    expect(posix('clients\\github-action\\src\\run.ts')).toBe('clients/github-action/src/run.ts');
    expect(posix('clients/github-action/src/run.ts')).toBe('clients/github-action/src/run.ts');
  });
});

describe('step inputs', () => {
  it('When ttl-seconds is empty, Then the broker default applies; a non-number is refused with its name', () => {
    expect(optionalSeconds('ttl-seconds', '')).toBeUndefined();
    expect(optionalSeconds('ttl-seconds', ' 900 ')).toBe(900);
    expect(() => optionalSeconds('ttl-seconds', '15m')).toThrow(
      /ttl-seconds must be a whole number/,
    );
  });

  it('When a flag is given, Then YAML 1.2 booleans are read and anything else is refused', () => {
    expect(flag('release', '', true)).toBe(true);
    expect(flag('release', 'False', true)).toBe(false);
    expect(flag('wait', 'TRUE', false)).toBe(true);
    expect(() => flag('release', 'no', true)).toThrow(/release must be true or false/);
  });

  it('When the broker URL or target is missing or malformed, Then the message names the input', () => {
    expect(() => required('broker-url', '  ', 'the base URL')).toThrow(/broker-url is required/);
    expect(targetName('target', ' kv-prod ')).toBe('kv-prod');
    expect(
      targetName('target', 'sql-orders-prod-weu-0123456789-0123456789-0123456789-01234'),
    ).toMatch(/^sql-orders/);
    expect(() => targetName('vault', 'kv_prod')).toThrow(
      /vault must be the name of a vault, storage account or SQL server/,
    );
    expect(() => targetName('target', '-kv')).toThrow(/target must be the name/);
  });

  it('When the scope is an App ID URI, Then /.default is added once', () => {
    expect(brokerScope('api://kv-lease')).toBe('api://kv-lease/.default');
    expect(brokerScope('api://kv-lease/.default')).toBe('api://kv-lease/.default');
    expect(brokerScope('api://kv-lease/')).toBe('api://kv-lease/.default');
  });

  it('When a reason is longer than the broker takes, Then it is cut to 256 characters', () => {
    expect(clampReason('x'.repeat(300))).toHaveLength(256);
    expect(clampReason('short')).toBe('short');
  });
});

describe('service connection credentials', () => {
  const connection = (scheme: string, parameters: Record<string, string>) => ({
    id: 'sc-1',
    scheme,
    parameter: (name: string) => parameters[name],
  });

  it('When the connection uses workload identity federation, Then its tenant and client id are used with the connection id', () => {
    expect(
      chooseCredential(
        connection('WorkloadIdentityFederation', { tenantid: 't', serviceprincipalid: 'c' }),
      ),
    ).toEqual({ kind: 'workload-identity', tenantId: 't', clientId: 'c', connectionId: 'sc-1' });
  });

  it('When the connection is a service principal with a secret, or a managed identity, Then those credentials are chosen', () => {
    expect(
      chooseCredential(
        connection('ServicePrincipal', {
          tenantid: 't',
          serviceprincipalid: 'c',
          serviceprincipalkey: 's',
        }),
      ),
    ).toEqual({ kind: 'client-secret', tenantId: 't', clientId: 'c', secret: 's' });
    expect(chooseCredential(connection('ManagedServiceIdentity', {}))).toEqual({
      kind: 'managed-identity',
    });
  });

  it('When the connection lacks a parameter or uses another scheme, Then the message says what to change', () => {
    expect(() => chooseCredential(connection('WorkloadIdentityFederation', {}))).toThrow(
      /sc-1 .* has no tenantid/,
    );
    expect(() =>
      chooseCredential(
        connection('ServicePrincipal', {
          tenantid: 't',
          serviceprincipalid: 'c',
          authenticationType: 'spnCertificate',
        }),
      ),
    ).toThrow(/certificate/);
    expect(() => chooseCredential(connection('UsernamePassword', {}))).toThrow(
      /use workload identity federation/,
    );
  });
});

describe('grant and release steps: the saved state', () => {
  function memoryState(): StateStore & { saved: [string, string][] } {
    const saved: [string, string][] = [];
    return {
      saved,
      save: (name, value) => void saved.push([name, value]),
      get: (name) => saved.filter(([key]) => key === name).pop()?.[1] ?? '',
    };
  }
  const log = { info: () => undefined, warning: () => undefined };
  const settings = {
    brokerUrl: 'https://broker.example',
    target: { name: 'kv-a', body: { vault: 'kv-a' } },
    reason: 'line one\nline two',
    wait: false,
    waitTimeoutMs: 1000,
    release: true,
    grantDeadlineMs: 1000,
  };
  const lease: Lease = {
    id: 'L1',
    vault: 'kv-a',
    ip: '52.1.2.3/32',
    status: 'active',
    principal: 'p',
    createdAt: '2026-12-01T00:00:00.000Z',
    expiresAt: '2026-12-01T00:20:00.000Z',
  };

  it('When the grant request leaves, Then the broker URL, the request and its key are already saved, each on one line', async () => {
    const state = memoryState();
    let savedAtRequest: string[] = [];
    const client = {
      grant: (request: { idempotencyKey?: string }) => {
        savedAtRequest = state.saved.map(([name]) => name);
        expect(request.idempotencyKey).toBe('key-1');
        return Promise.reject(new Error('socket hang up'));
      },
    } as unknown as BrokerClient;
    await expect(
      grantStep(settings, {
        client,
        state,
        log,
        vaultToken: () => async () => 't',
        newKey: () => 'key-1',
      }),
    ).rejects.toThrow('socket hang up');
    expect(savedAtRequest).toEqual(
      expect.arrayContaining([STATE.broker, STATE.request, STATE.key, STATE.phase]),
    );
    expect(state.get(STATE.phase)).toBe('granting');
    for (const [, value] of state.saved) expect(value).not.toMatch(/[\r\n]/);
  });

  it('When the broker refuses with a 4xx, Then the phase says so and the end step repeats nothing', async () => {
    const state = memoryState();
    const refused = new ProblemError({ status: 404, title: 'Not found', detail: 'no vault kv-a' });
    const client = { grant: () => Promise.reject(refused) } as unknown as BrokerClient;
    await expect(
      grantStep(settings, { client, state, log, vaultToken: () => async () => 't' }),
    ).rejects.toBe(refused);
    expect(state.get(STATE.phase)).toBe('refused');
    const outcome = await releaseStep({
      client: () => {
        throw new Error('no broker call expected');
      },
      state,
      log,
      deadlineMs: 1000,
    });
    expect(outcome).toEqual({ kind: 'nothing', why: 'the broker refused the grant' });
  });

  it('When the grant outcome is unknown, Then the end step repeats the grant with the saved key and releases what it returns', async () => {
    const state = memoryState();
    for (const [name, value] of [
      [STATE.broker, 'https://broker.example'],
      [STATE.request, '{"vault":"kv-a","ttlSeconds":600}'],
      [STATE.key, 'key-1'],
      [STATE.release, 'true'],
      [STATE.phase, 'granting'],
    ] as const) {
      state.save(name, value);
    }
    const calls: string[] = [];
    const client = {
      grant: (request: { vault: string; ttlSeconds?: number; idempotencyKey?: string }) => {
        calls.push(`grant ${request.vault} ${request.ttlSeconds} ${request.idempotencyKey}`);
        return Promise.resolve(lease);
      },
      release: (id: string) => {
        calls.push(`release ${id}`);
        return Promise.resolve({ ...lease, status: 'released' });
      },
    } as unknown as BrokerClient;
    const outcome = await releaseStep({ client: () => client, state, log, deadlineMs: 1000 });
    expect(outcome).toEqual({ kind: 'released', leaseId: 'L1' });
    expect(calls).toEqual(['grant kv-a 600 key-1', 'release L1']);
  });
});
