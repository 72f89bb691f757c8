import { describe, expect, it } from 'vitest';

import { storageNotation } from '../../src/targets/storage/firewall';
import {
  regionRanges,
  sameRegionWarning,
  type ServiceTagEntry,
} from '../../src/targets/storage/same-region';

/** In the shape of the Service Tag Discovery API's `values[]` (names as Azure spells them). */
const VALUES: ServiceTagEntry[] = [
  { name: 'AzureCloud', properties: { addressPrefixes: ['20.50.0.0/18', '40.71.0.0/16'] } },
  {
    name: 'AzureCloud.westeurope',
    properties: { addressPrefixes: ['20.50.0.0/18', '52.166.0.0/16', '2603:1020:200::/46'] },
  },
  { name: 'AzureCloud.eastus', properties: { addressPrefixes: ['40.71.0.0/16'] } },
  { name: 'Storage.WestEurope', properties: { addressPrefixes: ['51.0.0.0/8'] } },
];

const TAGS = regionRanges(VALUES);

describe('regionRanges', () => {
  it('When the list is read, then only the AzureCloud.<region> tags and their IPv4 prefixes are kept', () => {
    expect([...TAGS.entries()]).toEqual([
      ['westeurope', ['20.50.0.0/18', '52.166.0.0/16']],
      ['eastus', ['40.71.0.0/16']],
    ]);
  });

  it('When a tag name is capitalised differently, then it still names the region', () => {
    const ranges = regionRanges([
      { name: 'AzureCloud.WestEurope', properties: { addressPrefixes: ['20.50.0.0/18'] } },
    ]);

    expect(ranges.get('westeurope')).toEqual(['20.50.0.0/18']);
  });
});

describe('sameRegionWarning', () => {
  it("When the leased address lies in the account's region, then the warning names it, the region and what to do instead", () => {
    const warning = sameRegionWarning('20.50.1.2/32', 'westeurope', TAGS);

    expect(warning).toContain('20.50.1.2/32');
    expect(warning).toContain('AzureCloud.westeurope');
    expect(warning).toMatch(/no effect/);
    expect(warning).toMatch(/private addresses/);
    expect(warning).toMatch(/private endpoint/);
    expect(warning).toMatch(/service endpoint/);
    expect(warning).toMatch(/another region/);
  });

  it('When the leased address lies in another region or in none, then there is no warning', () => {
    expect(sameRegionWarning('40.71.1.2/32', 'westeurope', TAGS)).toBeUndefined();
    expect(sameRegionWarning('51.1.2.3/32', 'westeurope', TAGS)).toBeUndefined();
    expect(sameRegionWarning('8.8.8.8/32', 'westeurope', TAGS)).toBeUndefined();
  });

  it('When the leased range only overlaps a region prefix (wider or narrower), then it warns', () => {
    expect(sameRegionWarning('20.50.0.0/16', 'westeurope', TAGS)).toBeDefined();
    expect(sameRegionWarning('52.166.10.0/24', 'westeurope', TAGS)).toBeDefined();
    expect(sameRegionWarning('20.50.64.0/18', 'westeurope', TAGS)).toBeUndefined();
  });

  it('When the region is spelled as a display name, then it matches; an unknown region or a bad CIDR gives no warning', () => {
    expect(sameRegionWarning('20.50.1.2/32', 'West Europe', TAGS)).toBeDefined();
    expect(sameRegionWarning('20.50.1.2/32', 'uksouth', TAGS)).toBeUndefined();
    expect(sameRegionWarning('not-a-cidr', 'westeurope', TAGS)).toBeUndefined();
  });
});

describe('storageNotation', () => {
  it('When a plan rule is written to a storage account, then a /32 goes bare and anything else as it is', () => {
    expect(storageNotation('52.1.2.3/32')).toBe('52.1.2.3');
    expect(storageNotation('52.1.2.0/24')).toBe('52.1.2.0/24');
    expect(storageNotation('52.1.2.0/30')).toBe('52.1.2.0/30');
    expect(storageNotation('not a rule/32')).toBe('not a rule/32');
  });
});
