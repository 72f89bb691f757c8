import { printable } from '../../src/contract/printable';

/**
 * The errors of the kv-lease client, and the CLI exit code each one maps to. Every message is
 * one line (field errors excepted: one line each) and says what to do; none carries a token.
 */

/** A field error of a problem+json answer (`errors[]`). */
export interface FieldError {
  path: string;
  message: string;
}

/** For comparing texts: case and trailing punctuation aside. */
const plain = (text: string) =>
  text
    .trim()
    .replace(/[.:;\s]+$/, '')
    .toLowerCase();

/**
 * The one line (plus one line per field error) that every client prints for a
 * problem: `title: detail`. A detail that already starts with its title (a
 * broker may write the detail as a whole sentence) is printed alone, so no
 * message repeats its own prefix.
 */
function problemMessage(title: string, detail: string | undefined, errors: FieldError[]): string {
  const text = detail?.trim() ?? '';
  let head = title;
  if (text !== '') head = plain(text).startsWith(plain(title)) ? text : `${title}: ${text}`;
  // The broker's words go on a terminal or a CI log: one printable line each.
  const fields = errors.map((error) => `\n  ${printable(error.path)}: ${printable(error.message)}`);
  return `${printable(head)}${fields.join('')}`;
}

/** An RFC 9457 problem+json answer of the broker, or an error answer turned into one. */
export class ProblemError extends Error {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail?: string;
  readonly errors?: FieldError[];
  /** From `Retry-After`, when the broker sent one. */
  readonly retryAfterSeconds?: number;

  constructor(problem: {
    status: number;
    type?: string;
    title: string;
    detail?: string | undefined;
    errors?: FieldError[] | undefined;
    retryAfterSeconds?: number | undefined;
  }) {
    super(problemMessage(problem.title, problem.detail, problem.errors ?? []));
    this.name = 'ProblemError';
    this.status = problem.status;
    this.type = problem.type ?? 'about:blank';
    this.title = problem.title;
    if (problem.detail !== undefined) this.detail = problem.detail;
    if (problem.errors !== undefined) this.errors = problem.errors;
    if (problem.retryAfterSeconds !== undefined) this.retryAfterSeconds = problem.retryAfterSeconds;
  }

  /** The last segment of the problem type: `lease-not-found`, `vault-update-timeout`, ... */
  get kind(): string {
    return this.type.split(':').pop() ?? this.type;
  }
}

/** The deadline passed (a broker call, or the data plane that never let the address in). */
export class DeadlineError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DeadlineError';
  }
}

/** The vault sees the client at another address than the one leased: waiting will not help. */
export class WrongAddressError extends Error {
  constructor(
    readonly clientAddress: string,
    readonly leasedIp: string,
    /** How the target is named: `vault` (default), `SQL server`. */
    what = 'vault',
  ) {
    super(
      `the ${what} sees this client as ${printable(clientAddress)}, but the lease is for ${leasedIp}: ` +
        `the lease was for the wrong address (traffic to the ${what} leaves through another IP); ` +
        `lease ${printable(clientAddress)} instead (kv-lease grant --ip ${printable(clientAddress)}, needs Lease.Admin) ` +
        `or reach the ${what} the way the broker sees you`,
    );
    this.name = 'WrongAddressError';
  }
}

/** Bad input to the client or the CLI: a missing broker URL, a malformed TTL or duration. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** No token could be had, or a token was refused by the vault's data plane. */
export class CredentialError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CredentialError';
  }
}

/** The broker could not be reached (connection refused, DNS, TLS) within the deadline. */
export class UnreachableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnreachableError';
  }
}

/** A vault refusal that no firewall rule can fix (public network access disabled, ...). */
export class VaultRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VaultRefusedError';
  }
}

/**
 * A data-plane token may not go to this URI (plain http, a host that is not the lease's vault, a
 * loopback address without the opt-in), or its TLS failed (an untrusted certificate, a name
 * mismatch): permanent, no request with a token is sent and waiting cannot help.
 */
export class UntrustedDataPlaneError extends Error {
  constructor(
    readonly uri: string,
    readonly reason: string,
    /** `what`: the token's name in the message, `vault token` by default (`storage token`, ...). */
    options: { cause?: unknown; tls?: boolean; what?: string } = {},
  ) {
    const what = options.what ?? 'vault token';
    super(
      options.tls
        ? `the TLS connection to ${printable(uri)} failed, so no ${what} was sent: ${reason}`
        : `refusing to send a ${what} to ${printable(uri)}: ${reason}`,
      { cause: options.cause },
    );
    this.name = 'UntrustedDataPlaneError';
  }
}

/** The documented CLI exit codes. */
export const EXIT = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  unauthenticated: 3,
  refused: 4,
  notFound: 5,
  unavailable: 6,
  timeout: 7,
  wrongAddress: 8,
} as const;

/**
 * 0 ok · 1 unexpected · 2 usage / bad input · 3 no credential / 401 · 4 refused (400, 403, 409,
 * 413, 415, or a data-plane URI or certificate a token may not go to) · 5 not found (404) · 6 unavailable (429/5xx after retries, unreachable) · 7 timeout ·
 * 8 wrong address.
 */
export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof CredentialError) return EXIT.unauthenticated;
  if (error instanceof WrongAddressError) return EXIT.wrongAddress;
  if (error instanceof DeadlineError) return EXIT.timeout;
  if (error instanceof UnreachableError) return EXIT.unavailable;
  if (error instanceof VaultRefusedError) return EXIT.refused;
  if (error instanceof UntrustedDataPlaneError) return EXIT.refused;
  if (error instanceof ProblemError) {
    const status = error.status;
    if (status === 401) return EXIT.unauthenticated;
    if (status === 404) return EXIT.notFound;
    if (status === 429 || status === 502 || status === 503 || status === 504)
      return EXIT.unavailable;
    if (status >= 400 && status < 500) return EXIT.refused;
    return EXIT.unexpected;
  }
  return EXIT.unexpected;
}
