import ipaddr from 'ipaddr.js';

import { DomainError } from './errors';

/**
 * Address rules of the contract (section 1, "Which IP"): only public unicast
 * IPv4 may be leased; Key Vault stores a single address as `/32`, so every
 * comparison happens on that canonical form.
 */

const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

type V4 = ipaddr.IPv4;

/** Names for ipaddr.js range classes, as they appear in error messages. */
const RANGE_NAMES: Record<string, string> = {
  unspecified: 'the "this network" range 0.0.0.0/8',
  broadcast: 'the limited broadcast address 255.255.255.255/32',
  multicast: 'the multicast range 224.0.0.0/4',
  linkLocal: 'the link-local range 169.254.0.0/16',
  loopback: 'the loopback range 127.0.0.0/8',
  carrierGradeNat: 'the shared address space 100.64.0.0/10',
  private: 'a private (RFC 1918) range',
  reserved: 'a reserved or documentation range',
  as112: 'an AS112 range',
  amt: 'the AMT relay range',
};

const SPECIAL_RANGES: { name: string; network: V4; prefix: number }[] = Object.entries(
  (ipaddr.IPv4.prototype as unknown as { SpecialRanges: Record<string, [V4, number][]> })
    .SpecialRanges,
).flatMap(([name, ranges]) => ranges.map(([network, prefix]) => ({ name, network, prefix })));

function parseQuad(text: string): V4 | undefined {
  return DOTTED_QUAD.test(text) ? ipaddr.IPv4.parse(text) : undefined;
}

function notAllowed(message: string): DomainError {
  return new DomainError('LEASE.IP_NOT_ALLOWED', message, {
    errors: [{ path: 'ip', message }],
  });
}

function looksLikeIpv6(text: string): boolean {
  return text.includes(':') && ipaddr.IPv6.isValid(text.split('/')[0] ?? '');
}

/** Whitespace and control characters: never part of an address. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f-\u00a0\u2028\u2029]/;

/**
 * Canonical form of a firewall rule value as Key Vault stores it, or
 * `undefined` when the value is not an IPv4 address or CIDR (such a value is
 * kept verbatim by the broker and never treated as its own).
 */
export function canonicalRule(value: string): string | undefined {
  const [addressText, prefixText, ...rest] = value.trim().split('/');
  if (rest.length > 0 || addressText === undefined) return undefined;
  const address = parseQuad(addressText);
  if (!address) return undefined;
  if (prefixText === undefined) return `${address.toString()}/32`;
  if (!/^\d{1,2}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > 32) return undefined;
  const network = ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${prefix}`);
  return `${network.toString()}/${prefix}`;
}

/**
 * Validate an address or CIDR a caller asked to lease and return it in
 * canonical form. Refuses every non-public class and IPv6 with a message that
 * says why, and CIDRs with host bits set or wider than `minPrefix`.
 */
export function parseLeaseIp(input: string, minPrefix: number): string {
  // NOTE: never trimmed: what is leased is exactly what was asked for.
  if (CONTROL_OR_SPACE.test(input)) {
    throw notAllowed(
      `${JSON.stringify(input.slice(0, 64))} contains spaces or control characters: send the address or CIDR alone`,
    );
  }
  const text = input;
  if (looksLikeIpv6(text) || (text.startsWith('[') && text.includes(':'))) {
    throw notAllowed(
      `${text} is an IPv6 address: Key Vault firewall rules (like those of every kind kv-lease manages) accept IPv4 only`,
    );
  }
  const [addressText, prefixText, ...rest] = text.split('/');
  const address = addressText === undefined ? undefined : parseQuad(addressText);
  if (!address || rest.length > 0) {
    throw notAllowed(`"${input}" is not an IPv4 address or CIDR (expected a.b.c.d or a.b.c.d/nn)`);
  }
  let prefix = 32;
  if (prefixText !== undefined) {
    if (!/^\d{1,2}$/.test(prefixText) || Number(prefixText) > 32) {
      throw notAllowed(`"${input}" has an invalid prefix length (expected /0 to /32)`);
    }
    prefix = Number(prefixText);
    if (prefix < minPrefix) {
      throw notAllowed(`${text} is wider than /${minPrefix}, the widest range a lease may hold`);
    }
    const network = ipaddr.IPv4.networkAddressFromCIDR(text);
    if (network.toString() !== address.toString()) {
      throw notAllowed(`${text} has host bits set: did you mean ${network.toString()}/${prefix}?`);
    }
  }
  const special = SPECIAL_RANGES.find(
    (range) =>
      address.match(range.network, Math.min(prefix, range.prefix)) ||
      range.network.match(address, Math.min(prefix, range.prefix)),
  );
  if (special) {
    const what = prefix === 32 ? address.toString() : text;
    throw notAllowed(
      `${what} lies in ${RANGE_NAMES[special.name] ?? special.name}: only public unicast IPv4 addresses can be leased`,
    );
  }
  return `${address.toString()}/${prefix}`;
}

/**
 * One entry of `X-Forwarded-For` as the Azure front end writes it: `a.b.c.d`,
 * `a.b.c.d:port`, `[v6]:port`, a bare IPv6 or `::ffff:a.b.c.d`. Returns the
 * address without port (IPv4-mapped IPv6 unwrapped), or `undefined` for garbage.
 */
export function parseForwardedEntry(entry: string): string | undefined {
  // Only the optional whitespace of an HTTP list (spaces, tabs) surrounds an
  // entry; anything else that is not printable makes it garbage.
  let text = entry.replace(/^[ \t]+|[ \t]+$/g, '');
  if (CONTROL_OR_SPACE.test(text)) return undefined;
  if (text.length === 0 || text.length > 64) return undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  if (bracketed) {
    text = bracketed[1] ?? '';
  } else if (/^[\d.]+:\d{1,5}$/.test(text)) {
    text = text.slice(0, text.lastIndexOf(':'));
  }
  if (parseQuad(text)) return text;
  if (!ipaddr.IPv6.isValid(text)) return undefined;
  const v6 = ipaddr.IPv6.parse(text);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toString();
}

/**
 * The caller's address: the rightmost `X-Forwarded-For` entry, the one the
 * Azure front end appends. Earlier entries are caller-controlled and ignored.
 */
export function clientAddressFromForwardedFor(
  header: string | null | undefined,
): string | undefined {
  if (!header) return undefined;
  const entries = header.split(',');
  const last = entries[entries.length - 1];
  return last === undefined ? undefined : parseForwardedEntry(last);
}

/**
 * The one rule of which address a request without `ip` leases (contract
 * section 1, "Which IP"), in two halves that a grant applies at two moments:
 * `callerAddress` while its input is validated (a garbled header is a 400
 * before anything else is looked at), `callerLeaseIp` once the grant is
 * allowed. `GET /api/whoami` applies both to the same header, so what it
 * reports is exactly what a grant would lease.
 */

/**
 * The caller's address from the `X-Forwarded-For` header (rightmost entry,
 * without port), `undefined` when there is no header, `LEASE.NO_CLIENT_IP`
 * when its last entry is not an address.
 */
export function callerAddress(forwardedFor: string | null): string | undefined {
  if (forwardedFor === null) return undefined;
  const address = clientAddressFromForwardedFor(forwardedFor);
  if (address === undefined) {
    throw new DomainError(
      'LEASE.NO_CLIENT_IP',
      'The last X-Forwarded-For entry is not an IP address',
    );
  }
  return address;
}

/**
 * What a grant leases for a caller at `address` (from `callerAddress`): the
 * `/32` of a public unicast IPv4 address; `LEASE.NO_CLIENT_IP` without one,
 * `LEASE.IP_NOT_ALLOWED` (saying why) for any other address.
 */
export function callerLeaseIp(address: string | undefined): string {
  if (address === undefined) {
    throw new DomainError(
      'LEASE.NO_CLIENT_IP',
      'No X-Forwarded-For header: call through the Functions front end, or (Lease.Admin) name an ip',
    );
  }
  return parseLeaseIp(address, 32);
}

/** The first and last address of a canonical CIDR (`52.10.20.0/24` → `52.10.20.0`, `52.10.20.255`). */
export function cidrBounds(cidr: string): { first: string; last: string } {
  const network = ipaddr.IPv4.networkAddressFromCIDR(cidr);
  const broadcast = ipaddr.IPv4.broadcastAddressFromCIDR(cidr);
  return { first: network.toString(), last: broadcast.toString() };
}

/**
 * The canonical CIDR covering exactly `first`..`last`, or `undefined` when
 * that range is not one CIDR block (or not two IPv4 addresses).
 */
export function cidrOfRange(first: string, last: string): string | undefined {
  const start = parseQuad(first);
  const end = parseQuad(last);
  if (!start || !end) return undefined;
  const low = ipv4Number(start);
  const high = ipv4Number(end);
  const size = high - low + 1;
  if (size <= 0 || (size & (size - 1)) !== 0 || low % size !== 0) return undefined;
  return `${start.toString()}/${32 - Math.log2(size)}`;
}

/** The single addresses of a canonical CIDR as `/32` rules (for ranges of at most `max` addresses). */
export function addressesOf(cidr: string, max = 2): string[] | undefined {
  const { first, last } = cidrBounds(cidr);
  const low = ipv4Number(ipaddr.IPv4.parse(first));
  const high = ipv4Number(ipaddr.IPv4.parse(last));
  if (high - low + 1 > max) return undefined;
  const out: string[] = [];
  for (let value = low; value <= high; value += 1) {
    out.push(`${[24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.')}/32`);
  }
  return out;
}

function ipv4Number(address: V4): number {
  return address.octets.reduce((value, octet) => value * 256 + octet, 0);
}
