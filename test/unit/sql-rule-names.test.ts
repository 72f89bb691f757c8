import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  cidrOfRuleName,
  heldCidr,
  isBrokerRuleName,
  ruleName,
  ruleRange,
} from '../../src/targets/sql/rule-names';

/** Azure SQL's rule name rules (targets-facts.md): at most 128 characters, none of these. */
// eslint-disable-next-line no-control-regex -- control characters are what is refused
const FORBIDDEN = /[<>*%&:\\/?\u0000-\u001f\u007f]/;

/** A canonical CIDR drawn as (address, prefix) with the host bits cleared, written by hand. */
const canonicalCidr = fc
  .tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }))
  .map(([address, prefix]) => {
    const size = 2 ** (32 - prefix);
    const network = Math.floor(address / size) * size;
    const quad = [24, 16, 8, 0].map((shift) => Math.floor(network / 2 ** shift) % 256).join('.');
    return { cidr: `${quad}/${prefix}`, network, last: network + size - 1 };
  });

function quad(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

describe('SQL rule names', () => {
  it('When a single address is named, then the name is kvlease-<address>-32', () => {
    expect(ruleName('52.10.20.30/32')).toBe('kvlease-52.10.20.30-32');
    expect(ruleName('52.10.20.0/24')).toBe('kvlease-52.10.20.0-24');
  });

  it('When any canonical CIDR is named, then the name is valid for Azure SQL and parses back to it, in any case', () => {
    fc.assert(
      fc.property(canonicalCidr, ({ cidr }) => {
        const name = ruleName(cidr);
        expect(name.length).toBeLessThanOrEqual(128);
        expect(FORBIDDEN.test(name)).toBe(false);
        expect(isBrokerRuleName(name)).toBe(true);
        expect(cidrOfRuleName(name)).toBe(cidr);
        expect(cidrOfRuleName(name.toUpperCase())).toBe(cidr);
      }),
    );
  });

  it('When a CIDR is given a rule, then its range is exactly the CIDR and the rule is held correctly', () => {
    fc.assert(
      fc.property(canonicalCidr, ({ cidr, network, last }) => {
        const range = ruleRange(cidr);
        expect(range).toEqual({ startIpAddress: quad(network), endIpAddress: quad(last) });
        expect(heldCidr({ name: ruleName(cidr), ...range })).toBe(cidr);
      }),
    );
  });

  it('When a value is not a canonical CIDR, then no name is made for it', () => {
    for (const value of ['52.10.20.30', '52.10.20.1/24', '052.10.20.30/32', 'x/32', '1.2.3.4/33']) {
      expect(() => ruleName(value), value).toThrow(/not a canonical IPv4 CIDR/);
    }
  });

  it.each([
    ['no prefix length', 'kvlease-52.10.20.30'],
    ['a suffix', 'kvlease-52.10.20.30-32-copy'],
    ['a leading zero', 'kvlease-052.10.20.30-32'],
    ['host bits set', 'kvlease-52.10.20.1-24'],
    ['an octet over 255', 'kvlease-256.10.20.30-32'],
    ['a prefix over 32', 'kvlease-52.10.20.30-33'],
    ['a slash instead of the hyphen', 'kvlease-52.10.20.30/32'],
    ['no address', 'kvlease-'],
    ['another prefix', 'lease-52.10.20.30-32'],
  ])('When a name has %s, then it names no CIDR', (_what, name) => {
    expect(cidrOfRuleName(name)).toBeUndefined();
  });

  it('When rules are told apart, then only the kvlease- prefix (any case) is the broker\u2019s', () => {
    expect(isBrokerRuleName('kvlease-anything')).toBe(true);
    expect(isBrokerRuleName('KVLease-52.10.20.30-32')).toBe(true);
    expect(isBrokerRuleName('AllowAllWindowsAzureIps')).toBe(false);
    expect(isBrokerRuleName('office-kvlease-52.10.20.30-32')).toBe(false);
    expect(isBrokerRuleName('kvlease')).toBe(false);
  });

  it('When a broker rule\u2019s range is not its name\u2019s CIDR, then it holds nothing', () => {
    const name = 'kvlease-52.10.20.30-32';
    expect(heldCidr({ name, startIpAddress: '52.10.20.30', endIpAddress: '52.10.20.30' })).toBe(
      '52.10.20.30/32',
    );
    expect(
      heldCidr({ name, startIpAddress: '52.10.20.30', endIpAddress: '52.10.20.31' }),
    ).toBeUndefined();
    expect(
      heldCidr({ name, startIpAddress: '52.10.20.31', endIpAddress: '52.10.20.31' }),
    ).toBeUndefined();
    expect(
      heldCidr({ name: 'kvlease-x', startIpAddress: '52.10.20.30', endIpAddress: '52.10.20.30' }),
    ).toBeUndefined();
  });
});
