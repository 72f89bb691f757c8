import {
  AzurePipelinesCredential,
  ClientSecretCredential,
  ManagedIdentityCredential,
  type TokenCredential,
} from '@azure/identity';

/**
 * The identity of an Azure Resource Manager service connection, as the agent
 * hands it to a task (ENDPOINT_AUTH_* variables, read through task-lib).
 */
export interface ServiceConnection {
  id: string;
  /** `WorkloadIdentityFederation`, `ServicePrincipal` or `ManagedServiceIdentity`. */
  scheme: string;
  parameter(name: string): string | undefined;
}

export type CredentialChoice =
  | { kind: 'workload-identity'; tenantId: string; clientId: string; connectionId: string }
  | { kind: 'client-secret'; tenantId: string; clientId: string; secret: string }
  | { kind: 'managed-identity'; clientId?: string };

/** Which credential a service connection calls for; throws a message that says what to change. */
export function chooseCredential(connection: ServiceConnection): CredentialChoice {
  const need = (name: string) => {
    const value = connection.parameter(name);
    if (!value) {
      throw new Error(
        `service connection ${connection.id} (${connection.scheme}) has no ${name}: edit the connection or use another`,
      );
    }
    return value;
  };
  switch (connection.scheme) {
    case 'WorkloadIdentityFederation':
      return {
        kind: 'workload-identity',
        tenantId: need('tenantid'),
        clientId: need('serviceprincipalid'),
        connectionId: connection.id,
      };
    case 'ServicePrincipal':
      if ((connection.parameter('authenticationType') ?? 'spnKey') !== 'spnKey') {
        throw new Error(
          `service connection ${connection.id} uses a certificate, which this task does not read: use workload identity federation`,
        );
      }
      return {
        kind: 'client-secret',
        tenantId: need('tenantid'),
        clientId: need('serviceprincipalid'),
        secret: need('serviceprincipalkey'),
      };
    case 'ManagedServiceIdentity': {
      const clientId = connection.parameter('serviceprincipalid');
      return { kind: 'managed-identity', ...(clientId ? { clientId } : {}) };
    }
    default:
      throw new Error(
        `service connection ${connection.id} has the scheme '${connection.scheme}', which this task does not support: use workload identity federation`,
      );
  }
}

export function credentialFor(
  choice: CredentialChoice,
  systemAccessToken: string | undefined,
): TokenCredential {
  switch (choice.kind) {
    case 'workload-identity':
      if (!systemAccessToken) {
        throw new Error(
          'workload identity federation needs the job access token (SystemVssConnection), which this job does not have',
        );
      }
      return new AzurePipelinesCredential(
        choice.tenantId,
        choice.clientId,
        choice.connectionId,
        systemAccessToken,
      );
    case 'client-secret':
      return new ClientSecretCredential(choice.tenantId, choice.clientId, choice.secret);
    case 'managed-identity':
      return choice.clientId
        ? new ManagedIdentityCredential({ clientId: choice.clientId })
        : new ManagedIdentityCredential();
  }
}
