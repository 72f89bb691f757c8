import { type Config, managedTargets } from '../../src/app/config';

/**
 * What `npm start` prints once everything listens: where the broker is, and
 * lines a newcomer pastes into a POSIX shell to drive it with the CLI. With
 * the bundled emulator the paste ends in a `kv-lease grant ... --wait` that
 * succeeds end to end: the grant, the firewall write, and the emulated data
 * plane letting the leased address in.
 */

/** The bundled emulator's demo, as npm start set it up. */
export interface Demo {
  vault: string;
  /** The emulator's CA (absolute): the CLI trusts the emulated data plane through it. */
  caPath: string;
  /** The address the emulated data plane sees for every caller: "this machine's public IP". */
  clientAddress: string;
  /** Any bearer token opens the emulated data plane; the CLI must send one. */
  vaultToken: string;
  /** The demo storage account and SQL server, and the SQL server's TDS endpoint (`host:port`). */
  storageAccount: string;
  sqlServer: string;
  sqlDataPlane: string | undefined;
}

export interface BannerFacts {
  /** `http://127.0.0.1:<port>` */
  brokerUrl: string;
  config: Pick<
    Config,
    'AUTH_MODE' | 'AUTH_AUDIENCE' | 'SWEEP_SCHEDULE' | 'BROKER_VAULTS' | 'BROKER_TARGETS'
  >;
  started: string[];
  demo: Demo | undefined;
  /** The built CLI bundle (absolute), when this checkout has one. */
  cliPath: string | undefined;
}

/** POSIX shell quoting: bare when only safe characters, else single quotes. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function exportLine(variables: [string, string][]): string {
  return `  export ${variables.map(([name, value]) => `${name}=${shellQuote(value)}`).join(' ')}`;
}

function cliLines(facts: BannerFacts): string[] {
  const { config, demo, cliPath } = facts;
  if (cliPath === undefined) return [];
  const auth: [string, string][] =
    config.AUTH_MODE === 'disabled'
      ? [['KV_LEASE_AUTH', 'none']]
      : [['KV_LEASE_SCOPE', `${config.AUTH_AUDIENCE[0] ?? 'api://kv-lease'}/.default`]];
  const lines = [
    `the CLI against this broker (paste into a POSIX shell${config.AUTH_MODE === 'disabled' ? '' : '; tokens come from az login'}):`,
    exportLine([['KV_LEASE_BROKER', facts.brokerUrl], ...auth]),
  ];
  if (demo) {
    lines.push(
      exportLine([
        ['KV_LEASE_VAULT_TOKEN', demo.vaultToken],
        ['KV_LEASE_ALLOW_LOOPBACK_DATA_PLANE', '1'],
        ['NODE_EXTRA_CA_CERTS', demo.caPath],
      ]),
    );
  }
  lines.push(`  alias kv-lease=${shellQuote(`node ${shellQuote(cliPath)}`)}`);
  if (demo) {
    lines.push(`  kv-lease grant --vault ${demo.vault} --ip ${demo.clientAddress} --wait`);
    lines.push(
      `the demo plays this machine's public address as ${demo.clientAddress}: the emulated vault sees every caller there, ` +
        'and with no front end to say so (no X-Forwarded-For) the grant names it with --ip',
    );
    lines.push('the other demo targets (same shell): a storage account and a SQL server');
    lines.push(
      `  kv-lease grant --target ${demo.storageAccount} --ip ${demo.clientAddress} --wait`,
    );
    if (demo.sqlDataPlane) {
      // NOTE: the broker names the server's real port (1433); the emulator's TDS endpoint has its own.
      lines.push(
        `  kv-lease grant --target ${demo.sqlServer} --ip ${demo.clientAddress} --wait --data-plane ${demo.sqlDataPlane}`,
      );
    }
  } else {
    lines.push('  kv-lease targets');
  }
  return lines;
}

export function bannerLines(facts: BannerFacts): string[] {
  const { brokerUrl, config, demo } = facts;
  const targets = managedTargets(config);
  const vault = demo?.vault ?? targets[0]?.name ?? 'kv-demo';
  const address = demo?.clientAddress ?? '52.10.20.30';
  return [
    `kv-lease listening on ${brokerUrl}/api (AUTH_MODE=${config.AUTH_MODE}, sweep "${config.SWEEP_SCHEDULE}")`,
    `operator console: ${brokerUrl}/api/console${config.AUTH_MODE === 'disabled' ? ' (no sign-in: AUTH_MODE=disabled)' : ''}`,
    ...facts.started.map((line) => `started: ${line}`),
    `targets: ${targets.map((target) => `${target.name} (${target.kind})`).join(', ')}`,
    ...cliLines(facts),
    'grant a lease with curl (the X-Forwarded-For header plays the Azure front end):',
    `  curl -i -X POST ${brokerUrl}/api/leases -H 'Content-Type: application/json' -H 'X-Forwarded-For: ${address}' -d '{"vault":"${vault}","ttlSeconds":600}'`,
    'Ctrl-C stops everything started here.',
  ];
}
