import ipaddr from 'ipaddr.js';

/**
 * Each Azure region's public IPv4 ranges, as the `AzureCloud.<region>` service tags list them:
 * region name as Resource Manager spells a location (`westeurope`) → its prefixes.
 */
export type RegionRanges = ReadonlyMap<string, readonly string[]>;

/** One entry of the Service Tag Discovery API's `values[]`, as far as this module reads it. */
export interface ServiceTagEntry {
  name?: string | undefined;
  properties?: { addressPrefixes?: readonly string[] | undefined } | undefined;
}

const REGIONAL_TAG = /^AzureCloud\.([A-Za-z0-9]+)$/;

/** A location as Resource Manager spells it: `West Europe` and `westeurope` are one region. */
export function regionKey(location: string): string {
  return location.toLowerCase().replace(/\s+/g, '');
}

/**
 * The regions' ranges from the Service Tag Discovery API's `values[]`: only the
 * `AzureCloud.<region>` tags and their IPv4 prefixes are kept (the full list is several MB;
 * the rest is never read).
 *
 * NOTE: the region is taken from the tag's name, not `properties.region`: every service's
 * regional tag (`Storage.WestEurope`, ...) carries the same region, and only `AzureCloud.*`
 * is the whole region's address space. Names compare case-insensitively.
 */
export function regionRanges(values: readonly ServiceTagEntry[]): RegionRanges {
  const ranges = new Map<string, string[]>();
  for (const tag of values) {
    const match = REGIONAL_TAG.exec(tag.name ?? '');
    if (!match?.[1]) continue;
    const prefixes = (tag.properties?.addressPrefixes ?? []).filter((prefix) =>
      ipaddr.IPv4.isValidCIDRFourPartDecimal(prefix),
    );
    const region = regionKey(match[1]);
    ranges.set(region, [...(ranges.get(region) ?? []), ...prefixes]);
  }
  return ranges;
}

function parseV4Cidr(text: string): [ipaddr.IPv4, number] | undefined {
  try {
    return ipaddr.IPv4.parseCIDR(text);
  } catch {
    return undefined;
  }
}

/** Two CIDRs overlap when their networks agree on the shorter of the two prefixes. */
function overlaps([a, aBits]: [ipaddr.IPv4, number], [b, bBits]: [ipaddr.IPv4, number]): boolean {
  return a.match(b, Math.min(aBits, bBits));
}

/**
 * The warning a lease on `cidr` (canonical IPv4) on a storage account in `region` carries, or
 * undefined: when the range overlaps the region's `AzureCloud.<region>` prefixes, clients there
 * reach the account from private addresses and the IP rule does nothing for them. Unknown
 * region or unparsable CIDR: no warning (the grant is never refused on this guess).
 */
export function sameRegionWarning(
  cidr: string,
  region: string,
  tags: RegionRanges,
): string | undefined {
  const lease = parseV4Cidr(cidr);
  const prefixes = tags.get(regionKey(region));
  if (!lease || !prefixes) return undefined;
  const hit = prefixes.find((prefix) => {
    const range = parseV4Cidr(prefix);
    return range !== undefined && overlaps(lease, range);
  });
  if (hit === undefined) return undefined;
  return (
    `${cidr} lies in Azure's ${regionKey(region)} region (service tag AzureCloud.${regionKey(region)}: ${hit}), ` +
    `the storage account's own region: its IP rules have no effect for clients in that region, ` +
    `whose traffic reaches the account from private addresses, so this lease may not let the job in. ` +
    `Use a private endpoint or a service endpoint with a virtual network rule on the account instead, ` +
    `or run the job in another region.`
  );
}
