import { printable } from '../../../src/contract/printable';
import type { DataPlaneEndpoint } from '../data-plane-endpoint';
import { VaultRefusedError } from '../errors';
import type { Probe } from './probe';
import { tryTdsLogin } from './sql-tds';

/**
 * The SQL probe: one TDS login with a token for the server's cloud
 * (`https://database.windows.net/.default`, ...) on port 1433. Login error 40615 ("Client with IP
 * address 'a.b.c.d' is not allowed to access the server") is the firewall and names the address
 * the server saw; any other outcome of the login (18456, no such user, or a session) came from
 * past it. The login itself lives in sql-tds.ts.
 */

export type TdsLogin = typeof tryTdsLogin;

export function sqlProbe(endpoint: DataPlaneEndpoint, login: TdsLogin = tryTdsLogin): Probe {
  return async (token, signal) => {
    let answer: Awaited<ReturnType<TdsLogin>>;
    try {
      answer = await login({ host: endpoint.host, port: endpoint.port, token, signal });
    } catch (error) {
      if (signal.aborted) throw error;
      // NOTE: the login answers failures as values; a throw is a defect, not a network blip:
      // stop at once rather than retry it until the deadline.
      throw new Error(
        `the SQL probe of ${endpoint.uri} failed: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    switch (answer.result) {
      case 'through':
        return { outcome: 'through' };
      case 'refused':
        return {
          outcome: 'refused',
          last: 'login error 40615',
          ...(answer.clientAddress ? { clientAddress: answer.clientAddress } : {}),
        };
      case 'failed':
        if (answer.permanent) {
          throw new VaultRefusedError(
            `the SQL server ${endpoint.uri} cannot be probed: ${printable(answer.reason)}`,
          );
        }
        return { outcome: 'retry', last: printable(answer.reason) };
    }
  };
}
