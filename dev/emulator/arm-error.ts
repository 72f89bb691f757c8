import { STATUS_CODES } from 'node:http';

/**
 * An answer in Resource Manager's error shape, `{ "error": { "code", "message" } }`. The SDK
 * turns it into a `RestError` whose `code` is `error.code`, which is what clients branch on.
 */
export class ArmError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ArmError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }

  body(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export function badRequest(message: string): ArmError {
  return new ArmError(400, 'BadRequest', message);
}

/** The code Resource Manager uses for a bare status, e.g. 503 → `ServiceUnavailable`. */
export function codeForStatus(status: number): string {
  const text = STATUS_CODES[status] ?? 'Error';
  return text
    .replace(/[^A-Za-z0-9 ]/g, '')
    .replace(/(?:^|\s+)(\w)/g, (_, c: string) => c.toUpperCase());
}

/** Resource Manager's 404 for a resource (or child, e.g. `Microsoft.Sql/servers/s/firewallRules/r`). */
export function resourceNotFound(typeAndName: string, resourceGroup: string): ArmError {
  return new ArmError(
    404,
    'ResourceNotFound',
    `The Resource '${typeAndName}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}
