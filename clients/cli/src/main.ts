/**
 * `kv-lease`: the operator and pipeline CLI of the kv-lease broker, on the client library.
 * Results go to stdout (tables, or JSON with --json); progress and errors go to stderr, errors
 * as one line that says what to do, with a documented exit code (see EXIT_CODES_HELP).
 */
import { Command, CommanderError, Option } from 'commander';

import {
  aliased,
  ALLOW_LOOPBACK_ENV,
  BrokerClient,
  brokerDataPlane,
  type CallOptions,
  checkConfiguredUri,
  DataPlaneEndpoint,
  dataPlaneKind,
  DEFAULT_BROKER_SCOPE,
  DEFAULT_DEADLINE_MS,
  DEFAULT_VAULT_TOKEN_ENV,
  exitCodeFor,
  type Lease,
  type LeaseStatusFilter,
  loopbackOptIn,
  parseDuration,
  parseSince,
  printable,
  printableJson,
  printableLines,
  ProblemError,
  targetOf,
  tokenProvider,
  UsageError,
  waitForDataPlane,
} from '../../lib';
import {
  auditTable,
  leaseBlock,
  leaseTable,
  relative,
  targetTable,
  vaultTable,
  whoamiBlock,
} from './output';

declare const KV_LEASE_VERSION: string | undefined;
export const VERSION = typeof KV_LEASE_VERSION === 'string' ? KV_LEASE_VERSION : '0.0.0-dev';

const EXIT_CODES_HELP = `
Exit codes:
  0  ok
  1  unexpected error
  2  usage / bad input (unknown option, bad TTL or duration, no broker URL)
  3  no credential, or the token was refused (401)
  4  refused by the broker (400, 403, 409 limit or capacity) or by the target, or the
     data-plane address or its certificate is not one a token may go to (see below)
  5  not found (unknown target or lease)
  6  unavailable (503/502/429 after retries, broker unreachable)
  7  timeout (deadline passed, or the target's data plane never let the address in)
  8  wrong address (the vault or SQL server sees another client address than the leased one)
  130 interrupted (Ctrl-C)

Environment:
  KV_LEASE_BROKER        broker URL (instead of --broker)
  KV_LEASE_SCOPE         token scope of the broker (instead of --scope)
  KV_LEASE_TOKEN         bearer token for the broker (else DefaultAzureCredential)
  KV_LEASE_VAULT_TOKEN   bearer token for the target's data plane: vault, storage or SQL
                         (else DefaultAzureCredential)
  KV_LEASE_AUTH=none     send no token (a broker with AUTH_MODE=disabled), like --no-auth
  KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE=1
                         probe a loopback data plane (the local emulator), like
                         --allow-loopback-data-plane
  NODE_EXTRA_CA_CERTS    a CA file Node trusts besides its own (the local emulator's CA)

Where the data-plane token goes (grant --wait, wait): only to the address given with
--data-plane (or --vault-uri), else to the broker's when its host is the lease's target under
a known suffix of the target's kind: a vault <name>.vault.azure.net (.vault.azure.cn,
.vault.usgovcloudapi.net) over https; a storage account <name>.blob.core.windows.net
(.blob.core.chinacloudapi.cn, .blob.core.usgovcloudapi.net) over https; a SQL server
<name>.database.windows.net (.database.chinacloudapi.cn, .database.usgovcloudapi.net) on port
1433 over TDS. Anything else is refused (exit 4) and the lease released. A TLS failure
(untrusted certificate, name mismatch) stops the wait at once.
`;

const STATUSES: readonly LeaseStatusFilter[] = ['active', 'released', 'expired', 'all'];

export interface Io {
  env: NodeJS.ProcessEnv;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal: progress then rewrites one line. */
  interactive: boolean;
  signal: AbortSignal;
}

interface GlobalOptions {
  broker?: string;
  scope?: string;
  json?: boolean;
  auth: boolean;
  timeout?: string;
}

interface Context {
  client: BrokerClient;
  json: boolean;
  call: CallOptions;
  auth: boolean;
}

function contextFrom(command: Command, io: Io): Context {
  const globals = command.optsWithGlobals<GlobalOptions>();
  const broker = globals.broker ?? io.env['KV_LEASE_BROKER'];
  if (!broker) {
    throw new UsageError(
      'no broker URL: pass --broker https://<function-app>.azurewebsites.net or set KV_LEASE_BROKER',
    );
  }
  const auth = globals.auth && io.env['KV_LEASE_AUTH']?.toLowerCase() !== 'none';
  const scope = globals.scope ?? io.env['KV_LEASE_SCOPE'] ?? DEFAULT_BROKER_SCOPE;
  const deadlineMs =
    globals.timeout === undefined
      ? DEFAULT_DEADLINE_MS
      : positive(parseDuration(globals.timeout, '--timeout'), '--timeout') * 1000;
  const client = new BrokerClient({
    baseUrl: broker,
    token: auth ? tokenProvider({ scope, env: io.env }) : undefined,
    userAgent: `kv-lease-cli/${VERSION}`,
    onRetry: (info) =>
      io.stderr(
        `kv-lease: ${info.status ?? 'network error'} (${info.reason.split('\n')[0]}); ` +
          `retrying in ${(info.delayMs / 1000).toFixed(1)} s\n`,
      ),
  });
  return {
    client,
    json: globals.json === true,
    call: { deadlineMs, signal: io.signal },
    auth,
  };
}

function positive(seconds: number, what: string): number {
  if (seconds <= 0) throw new UsageError(`${what} must be more than 0 seconds`);
  return seconds;
}

function print(io: Io, context: Context, value: unknown, human: () => string): void {
  io.stdout(`${context.json ? printableJson(value) : human()}\n`);
}

/**
 * The process's streams with everything the CLI writes made printable: whatever the broker or a
 * vault answered (a lease reason with terminal escapes, a problem detail) reaches the terminal
 * escaped. Only the CLI's own line breaks pass.
 */
function guarded(io: Io): Io {
  return {
    ...io,
    stdout: (text) => io.stdout(printableLines(text)),
    stderr: (text) => io.stderr(printableLines(text)),
  };
}

/**
 * Progress of the data-plane wait on stderr: one rewritten line on a terminal, else every 5 s.
 * It writes to the raw stream (`raw`, not `guarded`) for its own carriage return and erase-line
 * sequence; the line itself is made printable here.
 */
function progressReporter(io: Io, lease: Lease, what: string) {
  let lastLineAt = 0;
  let wrote = false;
  return {
    report: (p: { attempt: number; elapsedMs: number; clientAddress?: string; last?: string }) => {
      const line = printable(
        `kv-lease: waiting for ${lease.target ?? lease.vault} to admit ${lease.ip}: ${(p.elapsedMs / 1000).toFixed(1)} s, ` +
          `probe ${p.attempt}: ${p.last ?? ''}${p.clientAddress ? `, ${what} sees ${p.clientAddress}` : ''}`,
      );
      if (io.interactive) {
        io.stderr(`\r\x1b[K${line}`);
        wrote = true;
      } else if (p.attempt === 1 || p.elapsedMs - lastLineAt >= 5000) {
        io.stderr(`${line}\n`);
        lastLineAt = p.elapsedMs;
      }
    },
    done: () => {
      if (wrote) io.stderr('\n');
    },
  };
}

interface WaitOptions {
  waitTimeout?: string;
  dataPlane?: string;
  vaultUri?: string;
  allowLoopbackDataPlane?: boolean;
}

/**
 * The wait's settings, checked before anything is granted: a bad --wait-timeout, --data-plane
 * (--vault-uri) or KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE is a usage error that leaves no lease behind.
 */
function waitSettings(io: Io, options: WaitOptions) {
  // Undefined: the default of the lease's kind (known after the grant), see defaultWaitMs.
  const timeoutMs =
    options.waitTimeout === undefined
      ? undefined
      : positive(parseDuration(options.waitTimeout, '--wait-timeout'), '--wait-timeout') * 1000;
  const configured = aliased(
    { label: '--data-plane', value: options.dataPlane },
    { label: '--vault-uri', value: options.vaultUri },
  );
  if (configured) {
    checkConfiguredUri(configured.value, configured.primary ? '--data-plane' : '--vault-uri');
  }
  const allowLoopback =
    options.allowLoopbackDataPlane === true ||
    loopbackOptIn(io.env[ALLOW_LOOPBACK_ENV], ALLOW_LOOPBACK_ENV);
  return { timeoutMs, configuredUri: configured?.value, allowLoopback };
}

/** A lease's warnings (contract §4: the rule may not have the effect expected), on stderr. */
function printWarnings(io: Io, lease: Lease): void {
  for (const warning of lease.warnings ?? []) io.stderr(`warning: ${printable(warning)}\n`);
}

/**
 * Waits until the target's data plane admits the lease, with the probe of the lease's kind.
 * `target` is the target the caller asked for (grant) or the lease's own (wait): the only target
 * whose host a token may go to.
 */
async function waitForLease(
  io: Io,
  raw: Io,
  lease: Lease,
  target: string,
  settings: ReturnType<typeof waitSettings>,
): Promise<void> {
  const endpoint = DataPlaneEndpoint.resolve({
    vault: target,
    kind: dataPlaneKind(lease.kind),
    brokerUri: brokerDataPlane(lease),
    configuredUri: settings.configuredUri,
    allowLoopback: settings.allowLoopback,
  });
  if (endpoint.source === 'default') {
    io.stderr(
      `kv-lease: the broker did not name the ${endpoint.what}'s data plane; probing ${endpoint.uri} (--data-plane to change)\n`,
    );
  }
  const timeoutMs = settings.timeoutMs;
  const progress = progressReporter(raw, lease, endpoint.what);
  try {
    const result = await waitForDataPlane({
      endpoint,
      leasedIp: lease.ip,
      token: tokenProvider({
        scope: endpoint.scope,
        envVar: DEFAULT_VAULT_TOKEN_ENV,
        env: io.env,
        destination: endpoint.uri,
      }),
      timeoutMs,
      signal: io.signal,
      onProgress: progress.report,
    });
    progress.done();
    io.stderr(
      `kv-lease: ${lease.target ?? lease.vault} admits ${lease.ip} after ${(result.elapsedMs / 1000).toFixed(1)} s ` +
        `(${result.attempts} probe${result.attempts === 1 ? '' : 's'})\n`,
    );
  } catch (error) {
    progress.done();
    throw error;
  }
}

/**
 * A list filter's target (`--target`, or `--vault`). NOTE: sent as `vault=`, which every broker
 * reads (v1.1 takes `target=` as its synonym; a v1 broker would ignore `target=` and list all).
 */
function onlyTarget(options: { target?: string | undefined; vault?: string | undefined }) {
  return aliased(
    { label: '--target', value: options.target },
    { label: '--vault', value: options.vault },
    (a, b) => a.toLowerCase() === b.toLowerCase(),
  )?.value;
}

function ttlOption(text: string | undefined): number | undefined {
  return text === undefined ? undefined : positive(parseDuration(text, '--ttl'), '--ttl');
}

export function buildProgram(raw: Io): Command {
  const io = guarded(raw);
  const program = new Command('kv-lease');
  program
    .description(
      'Time-limited leases on the IP firewall rules of Azure Key Vaults, Storage accounts and SQL servers (the kv-lease broker).',
    )
    .version(VERSION, '-V, --version')
    .option(
      '--broker <url>',
      'broker URL, e.g. https://func-x.azurewebsites.net (env KV_LEASE_BROKER)',
    )
    .option(
      '--scope <scope>',
      `token scope of the broker's app (env KV_LEASE_SCOPE, default ${DEFAULT_BROKER_SCOPE})`,
    )
    .option('--json', 'print JSON instead of tables (for scripts)')
    .option(
      '--no-auth',
      'send no token (a local broker with AUTH_MODE=disabled; env KV_LEASE_AUTH=none)',
    )
    .option('--timeout <duration>', 'limit of each broker call, retries included (default 120s)')
    .addHelpText('after', EXIT_CODES_HELP)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr(text),
      // Errors are printed once, by run(), as one line.
      outputError: () => undefined,
    });

  program
    .command('grant')
    .description(
      "lease this machine's IP (or --ip) on a target; --wait until its data plane lets it in",
    )
    .option(
      '--target <name>',
      'target name (vault, storage account, SQL server), as `kv-lease targets` lists it',
    )
    .option('--vault <name>', 'the older name of --target')
    .option('--ttl <duration>', "lease duration: seconds or 20m, 1h (default: the broker's)")
    .option('--ip <address>', 'lease this IPv4 address or CIDR instead (needs Lease.Admin)')
    .option('--reason <text>', 'free text kept with the lease, e.g. the pipeline run URL')
    .option('--idempotency-key <key>', 'repeat-safe key (default: a new one per run)')
    .option('--wait', "wait until the vault's data plane admits the address")
    .option('--wait-timeout <duration>', 'limit of --wait (default 180s; 6m for a SQL server)')
    .option(
      '--data-plane <address>',
      "data plane to probe (https URI, or host:port for SQL); wins over the broker's",
    )
    .option('--vault-uri <uri>', 'the older name of --data-plane')
    .option(
      '--allow-loopback-data-plane',
      `probe a loopback data plane (the local emulator; env ${ALLOW_LOOPBACK_ENV}=1)`,
    )
    .option('--keep-on-failure', 'keep the lease when --wait fails (default: release it)')
    .action(
      async (
        options: {
          target?: string;
          vault?: string;
          ttl?: string;
          ip?: string;
          reason?: string;
          idempotencyKey?: string;
          wait?: boolean;
          waitTimeout?: string;
          dataPlane?: string;
          vaultUri?: string;
          allowLoopbackDataPlane?: boolean;
          keepOnFailure?: boolean;
        },
        command: Command,
      ) => {
        const target = targetOf(
          { label: '--target', value: options.target },
          { label: '--vault', value: options.vault },
        );
        const context = contextFrom(command, io);
        const ttlSeconds = ttlOption(options.ttl);
        const wait = options.wait ? waitSettings(io, options) : undefined;
        const lease = await context.client.grant(
          {
            ...target.body,
            ttlSeconds,
            ip: options.ip,
            reason: options.reason,
            idempotencyKey: options.idempotencyKey,
          },
          context.call,
        );
        printWarnings(io, lease);
        if (wait) {
          io.stderr(
            `kv-lease: granted ${lease.id} for ${lease.ip} on ${lease.target ?? lease.vault} (expires ${relative(lease.expiresAt)})\n`,
          );
          try {
            await waitForLease(io, raw, lease, target.name, wait);
          } catch (error) {
            // Any failed wait, a refused vault URI included: the same release.
            if (!options.keepOnFailure) {
              // The lease is of no use to this run: give the rule back now rather than at expiry.
              await context.client
                .release(lease.id, { deadlineMs: 10_000 })
                .then(() => io.stderr(`kv-lease: released ${lease.id}\n`))
                .catch(() =>
                  io.stderr(
                    `kv-lease: could not release ${lease.id}; it expires ${relative(lease.expiresAt)}\n`,
                  ),
                );
            }
            throw error;
          }
        }
        print(io, context, lease, () => leaseBlock(lease));
      },
    );

  program
    .command('renew <id>')
    .description('extend a lease (expires = now + ttl)')
    .option('--ttl <duration>', "new duration from now: seconds or 20m, 1h (default: the broker's)")
    .action(async (id: string, options: { ttl?: string }, command: Command) => {
      const context = contextFrom(command, io);
      const lease = await context.client.renew(id, ttlOption(options.ttl), context.call);
      print(io, context, lease, () => leaseBlock(lease));
    });

  program
    .command('release <id>')
    .description('end a lease now: the rule leaves the vault before the answer')
    .action(async (id: string, _options: unknown, command: Command) => {
      const context = contextFrom(command, io);
      const lease = await context.client.release(id, context.call);
      print(io, context, lease, () => leaseBlock(lease));
    });

  program
    .command('wait <id>')
    .description("wait until the target's data plane admits a lease's address")
    .option('--wait-timeout <duration>', 'limit (default 180s; 6m for a SQL server)')
    .option(
      '--data-plane <address>',
      "data plane to probe (https URI, or host:port for SQL); wins over the broker's",
    )
    .option('--vault-uri <uri>', 'the older name of --data-plane')
    .option(
      '--allow-loopback-data-plane',
      `probe a loopback data plane (the local emulator; env ${ALLOW_LOOPBACK_ENV}=1)`,
    )
    .action(
      async (
        id: string,
        options: {
          waitTimeout?: string;
          dataPlane?: string;
          vaultUri?: string;
          allowLoopbackDataPlane?: boolean;
        },
        command: Command,
      ) => {
        const context = contextFrom(command, io);
        const settings = waitSettings(io, options);
        const lease = await context.client.get(id, context.call);
        if (lease.status !== 'active') {
          throw new ProblemError({
            status: 409,
            title: 'Lease not active',
            detail: `lease ${lease.id} is ${lease.status}: grant a new one`,
          });
        }
        printWarnings(io, lease);
        await waitForLease(io, raw, lease, lease.target ?? lease.vault, settings);
        print(io, context, lease, () => leaseBlock(lease));
      },
    );

  program
    .command('whoami')
    .description('who the broker sees: your principal, roles, and the address a grant would lease')
    .action(async (_options: unknown, command: Command) => {
      const context = contextFrom(command, io);
      const me = await context.client.whoami(context.call).catch((error: unknown) => {
        if (error instanceof ProblemError && error.status === 404) {
          throw new ProblemError({
            status: 404,
            title: 'No whoami here',
            detail: `${context.client.baseUrl}/whoami answered 404: the broker is older than v1.1 (update it)`,
          });
        }
        throw error;
      });
      print(io, context, me, () => whoamiBlock(me));
    });

  const leases = program.command('leases').description('list and show leases');
  leases
    .command('list')
    .description('leases, newest first (your own, or all with Lease.Read)')
    .option('--target <name>', 'only this target')
    .option('--vault <name>', 'the older name of --target')
    .addOption(
      new Option('--status <status>', 'active, released, expired or all').default('active'),
    )
    .action(
      async (options: { target?: string; vault?: string; status: string }, command: Command) => {
        const context = contextFrom(command, io);
        const only = onlyTarget(options);
        if (!STATUSES.includes(options.status as LeaseStatusFilter)) {
          throw new UsageError(`--status '${options.status}' is not one of ${STATUSES.join(', ')}`);
        }
        const found = await context.client.listLeases(
          { vault: only, status: options.status as LeaseStatusFilter },
          context.call,
        );
        print(io, context, found, () =>
          found.length === 0
            ? `no ${options.status === 'all' ? '' : `${options.status} `}leases`
            : leaseTable(found),
        );
      },
    );
  leases
    .command('show <id>')
    .description('one lease')
    .action(async (id: string, _options: unknown, command: Command) => {
      const context = contextFrom(command, io);
      const lease = await context.client.get(id, context.call);
      print(io, context, lease, () => leaseBlock(lease));
    });

  program
    .command('vaults')
    .description('the managed vaults: active leases and rules against the 1000-rule limit')
    .action(async (_options: unknown, command: Command) => {
      const context = contextFrom(command, io);
      const vaults = await context.client.vaults(context.call);
      print(io, context, vaults, () => vaultTable(vaults));
    });

  program
    .command('targets')
    .description(
      "the managed targets of every kind (vaults, storage accounts, SQL servers): rules against each kind's limit",
    )
    .action(async (_options: unknown, command: Command) => {
      const context = contextFrom(command, io);
      const targets = await context.client.targets(context.call).catch((error: unknown) => {
        if (error instanceof ProblemError && error.status === 404) {
          throw new ProblemError({
            status: 404,
            title: 'No targets here',
            detail: `${context.client.baseUrl}/targets answered 404: the broker is older than v1.1 (\`kv-lease vaults\` lists its vaults)`,
          });
        }
        throw error;
      });
      print(io, context, targets, () =>
        targets.length === 0 ? 'no targets' : targetTable(targets),
      );
    });

  program
    .command('audit')
    .description('the audit trail, newest first')
    .option('--target <name>', 'only this target')
    .option('--vault <name>', 'the older name of --target')
    .option('--principal <oid>', 'only this caller')
    .option('--since <when>', 'a duration back from now (1h, 30m, 2d) or an ISO date', '24h')
    .option('--limit <n>', 'at most this many entries')
    .action(
      async (
        options: {
          target?: string;
          vault?: string;
          principal?: string;
          since: string;
          limit?: string;
        },
        command: Command,
      ) => {
        const context = contextFrom(command, io);
        const only = onlyTarget(options);
        const since = parseSince(options.since);
        let limit: number | undefined;
        if (options.limit !== undefined) {
          if (!/^\d+$/.test(options.limit) || Number(options.limit) === 0) {
            throw new UsageError(`--limit '${options.limit}' is not a positive whole number`);
          }
          limit = Number(options.limit);
        }
        const entries = (
          await context.client.audit(
            { vault: only, principal: options.principal, since },
            context.call,
          )
        ).slice(0, limit);
        print(io, context, entries, () =>
          entries.length === 0 ? `no audit entries since ${since}` : auditTable(entries),
        );
      },
    );

  return program;
}

/** A hint after the broker's own words, where it helps to know what to run next. */
function hintFor(error: unknown): string {
  if (!(error instanceof ProblemError)) return '';
  switch (error.kind) {
    case 'vault-not-found':
      return ' (run `kv-lease targets`, or `kv-lease vaults` on a v1 broker, to see what this broker manages)';
    case 'lease-not-found':
      return ' (run `kv-lease leases list --status all` to see your leases)';
    case 'unauthenticated':
      return ' (check --scope, the App ID URI of the broker, and KV_LEASE_TOKEN)';
    default:
      return error.status === 401
        ? ' (check --scope and KV_LEASE_TOKEN, or use --no-auth for a local broker)'
        : '';
  }
}

/** Runs the CLI; resolves to the exit code. Never throws, never prints a stack trace. */
export async function run(argv: string[], io: Io): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help'
      ) {
        // A command group without its subcommand shows its help as an error (exit code 1).
        return error.exitCode === 0 ? 0 : 2;
      }
      io.stderr(
        printableLines(
          `kv-lease: ${error.message.replace(/^error: /, '')} (see kv-lease --help)\n`,
        ),
      );
      return 2;
    }
    if (io.signal.aborted) {
      io.stderr('kv-lease: interrupted\n');
      return 130;
    }
    const code = exitCodeFor(error);
    // The message's first line, then the hint; field errors follow, one indented line each.
    const [head = '', ...fields] = (error instanceof Error ? error.message : String(error)).split(
      '\n',
    );
    const prefix = code === 1 ? 'unexpected error: ' : '';
    const rest = fields.map((field) => `${field}\n`).join('');
    io.stderr(printableLines(`kv-lease: ${prefix}${head}${hintFor(error)}\n${rest}`));
    return code;
  }
}
