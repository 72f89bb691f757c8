import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { DomainError } from '../../src/domain/errors';
import { canonicalRule, clientAddressFromForwardedFor, parseLeaseIp } from '../../src/domain/ip';

/*
 * The oracle below is written from the contract ("Which IP"), not from ip.ts:
 * addresses are 32-bit integers and ranges are (network, prefix) pairs.
 */

interface Range {
  name: string;
  network: number;
  prefix: number;
}

function toInt(quad: string): number {
  return quad.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
}

function toQuad(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

function range(name: string, cidr: string): Range {
  const [network = '', prefix = ''] = cidr.split('/');
  return { name, network: toInt(network), prefix: Number(prefix) };
}

/** Start of the block of size 2^(32 - prefix) holding `value`. */
function networkOf(value: number, prefix: number): number {
  const size = 2 ** (32 - prefix);
  return Math.floor(value / size) * size;
}

/** Two CIDRs overlap when one contains the other's network. */
function overlaps(network: number, prefix: number, other: Range): boolean {
  const bits = Math.min(prefix, other.prefix);
  return networkOf(network, bits) === networkOf(other.network, bits);
}

/** Every class the contract says is refused. */
const REFUSED: Range[] = [
  range('RFC 1918', '10.0.0.0/8'),
  range('RFC 1918', '172.16.0.0/12'),
  range('RFC 1918', '192.168.0.0/16'),
  range('loopback', '127.0.0.0/8'),
  range('link-local', '169.254.0.0/16'),
  range('shared address space', '100.64.0.0/10'),
  range('this network', '0.0.0.0/8'),
  range('multicast', '224.0.0.0/4'),
  range('reserved', '240.0.0.0/4'),
  range('broadcast', '255.255.255.255/32'),
  range('documentation TEST-NET-1', '192.0.2.0/24'),
  range('documentation TEST-NET-2', '198.51.100.0/24'),
  range('documentation TEST-NET-3', '203.0.113.0/24'),
  range('benchmarking', '198.18.0.0/15'),
];

/**
 * Further IANA special-purpose blocks ("reserved" in the contract's wording).
 * ip.ts refuses them too; the properties neither require nor forbid that, they
 * only keep them out of the "public" generators.
 */
const OTHER_SPECIAL: Range[] = [
  range('IETF protocol assignments', '192.0.0.0/24'),
  range('6to4 relay anycast', '192.88.99.0/24'),
  range('AS112', '192.175.48.0/24'),
  range('AS112', '192.31.196.0/24'),
  range('AMT', '192.52.193.0/24'),
];

const NOT_PUBLIC = [...REFUSED, ...OTHER_SPECIAL];

const anyAddress = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const publicAddress = anyAddress.filter(
  (value) => !NOT_PUBLIC.some((special) => overlaps(value, 32, special)),
);
const minPrefix = fc.integer({ min: 8, max: 32 });

function inside(special: Range): fc.Arbitrary<number> {
  return fc
    .integer({ min: 0, max: 2 ** (32 - special.prefix) - 1 })
    .map((offset) => special.network + offset);
}

/** The DomainError `run` throws, or a failed expectation if it returns or throws anything else. */
function refusal(run: () => unknown): DomainError {
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    const domainError = error as DomainError;
    expect(domainError.code).toBe('LEASE.IP_NOT_ALLOWED');
    return domainError;
  }
  throw new Error(`expected LEASE.IP_NOT_ALLOWED, got ${JSON.stringify(result)}`);
}

const CANONICAL_CIDR =
  /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\/(3[0-2]|[12]?\d)$/;

/** The optional whitespace of an HTTP list: what may surround an X-Forwarded-For entry. */
const whitespace = fc.constantFrom('', ' ', '  ', '\t');

/** Strings near the accepted grammar: quads with odd octets, prefixes, padding, stray characters. */
const nearAddress = fc
  .tuple(
    fc.array(
      fc.oneof(
        fc.integer({ min: 0, max: 255 }).map(String),
        fc.constantFrom('256', '00', '01', '007', '-1', '', '1e2', '0x1f', ' 1'),
      ),
      { minLength: 1, maxLength: 5 },
    ),
    fc.option(
      fc.oneof(
        fc.integer({ min: 0, max: 40 }).map(String),
        fc.constantFrom('', '08', '032', '-1', '24/24', 'x'),
      ),
    ),
    whitespace,
    whitespace,
  )
  .map(
    ([octets, prefix, before, after]) =>
      `${before}${octets.join('.')}${prefix === null ? '' : `/${prefix}`}${after}`,
  );

/** Well-formed addresses and CIDRs (host bits cleared half of the time), padded: often accepted. */
const plausible = fc
  .tuple(anyAddress, fc.option(fc.integer({ min: 0, max: 32 })), fc.boolean(), whitespace)
  .map(([value, prefix, clearHostBits, pad]) => {
    if (prefix === null) return `${pad}${toQuad(value)}${pad}`;
    const address = clearHostBits ? networkOf(value, prefix) : value;
    return `${pad}${toQuad(address)}/${prefix}${pad}`;
  });

const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: fc.constantFrom(...'0123456789./:[]%abcdefABCDEFx ,\t'), maxLength: 60 }),
  nearAddress,
  plausible,
);

describe('parseLeaseIp', () => {
  it('When given any public unicast address, then it is accepted as a.b.c.d/32', () => {
    fc.assert(
      fc.property(publicAddress, minPrefix, (value, min) => {
        const quad = toQuad(value);
        expect(parseLeaseIp(quad, min)).toBe(`${quad}/32`);
        expect(parseLeaseIp(`${quad}/32`, min)).toBe(`${quad}/32`);
      }),
    );
  });

  it('When an address carries surrounding whitespace or a control character, then it is refused, never trimmed', () => {
    const control = fc.constantFrom(' ', '\t', '\n', '\r', '\u0000', '\u001f', '\u007f', '\u00a0');
    fc.assert(
      fc.property(
        publicAddress,
        control,
        fc.constantFrom('before', 'after', 'inside'),
        (value, c, where) => {
          const quad = toQuad(value);
          const text =
            where === 'before'
              ? `${c}${quad}`
              : where === 'after'
                ? `${quad}${c}`
                : `${quad}/${c}32`;
          refusal(() => parseLeaseIp(text, 24));
        },
      ),
    );
  });

  for (const special of REFUSED) {
    const cidr = `${toQuad(special.network)}/${special.prefix}`;
    it(`When given any address in ${cidr} (${special.name}), then it is refused with LEASE.IP_NOT_ALLOWED`, () => {
      fc.assert(
        fc.property(inside(special), minPrefix, (value, min) => {
          const error = refusal(() => parseLeaseIp(toQuad(value), min));
          expect(error.message).toMatch(/only public unicast IPv4/);
          expect(error.errors).toEqual([{ path: 'ip', message: error.message }]);
        }),
      );
    });
  }

  it('When given a CIDR with host bits zero, then it is accepted exactly when it is public and narrow enough', () => {
    fc.assert(
      fc.property(anyAddress, fc.integer({ min: 0, max: 32 }), minPrefix, (value, prefix, min) => {
        const network = networkOf(value, prefix);
        const cidr = `${toQuad(network)}/${prefix}`;
        fc.pre(!OTHER_SPECIAL.some((special) => overlaps(network, prefix, special)));
        if (prefix < min) {
          expect(refusal(() => parseLeaseIp(cidr, min)).message).toMatch(/wider than/);
        } else if (REFUSED.some((special) => overlaps(network, prefix, special))) {
          refusal(() => parseLeaseIp(cidr, min));
        } else {
          expect(parseLeaseIp(cidr, min)).toBe(cidr);
        }
      }),
    );
  });

  it('When an allowed-width CIDR overlaps a refused range, then it is refused even if its network address is public', () => {
    const overlapping = fc
      .constantFrom(...REFUSED)
      .chain((special) =>
        fc.tuple(inside(special), fc.integer({ min: 8, max: 32 }), fc.integer({ min: 8, max: 32 })),
      )
      .map(([value, prefix, min]) => ({
        cidr: `${toQuad(networkOf(value, prefix))}/${prefix}`,
        min: Math.min(min, prefix),
      }));
    fc.assert(
      fc.property(overlapping, ({ cidr, min }) => {
        expect(refusal(() => parseLeaseIp(cidr, min)).message).toMatch(/only public unicast IPv4/);
      }),
    );
    // e.g. a /23 whose lower half is public and upper half is TEST-NET-3
    expect(refusal(() => parseLeaseIp('203.0.112.0/23', 16)).message).toMatch(/reserved/);
  });

  it('When a CIDR has host bits set, then it is refused', () => {
    fc.assert(
      fc.property(
        publicAddress,
        fc.integer({ min: 0, max: 31 }),
        minPrefix,
        (value, prefix, min) => {
          fc.pre(networkOf(value, prefix) !== value);
          const network = networkOf(value, prefix);
          const error = refusal(() => parseLeaseIp(`${toQuad(value)}/${prefix}`, min));
          const isPublic = !NOT_PUBLIC.some((special) => overlaps(network, prefix, special));
          if (prefix >= min && isPublic) {
            expect(error.message).toContain(`did you mean ${toQuad(network)}/${prefix}?`);
          }
        },
      ),
    );
  });

  it('When the prefix is wider than minPrefix, then it is refused', () => {
    fc.assert(
      fc.property(publicAddress, minPrefix, fc.nat(), (value, min, pick) => {
        fc.pre(min > 0);
        const prefix = pick % min;
        const cidr = `${toQuad(networkOf(value, prefix))}/${prefix}`;
        expect(refusal(() => parseLeaseIp(cidr, min)).message).toContain(`wider than /${min}`);
      }),
    );
  });

  it('When given any IPv6 address, then it is refused with a message saying Key Vault takes IPv4 only', () => {
    const ipv6Input = fc.oneof(
      fc.ipV6(),
      fc.ipV6().map((v6) => `${v6}/64`),
      fc
        .tuple(fc.ipV6(), fc.integer({ min: 0, max: 65535 }))
        .map(([v6, port]) => `[${v6}]:${port}`),
      fc.ipV6().map((v6) => `[${v6}]`),
    );
    fc.assert(
      fc.property(ipv6Input, minPrefix, (text, min) => {
        const error = refusal(() => parseLeaseIp(text, min));
        expect(error.message).toMatch(/IPv6/);
        expect(error.message).toMatch(/IPv4 only/);
      }),
    );
  });

  it('When given arbitrary text, then it either returns a canonical CIDR or throws LEASE.IP_NOT_ALLOWED', () => {
    fc.assert(
      fc.property(anyText, minPrefix, (text, min) => {
        let result: string;
        try {
          result = parseLeaseIp(text, min);
        } catch (error) {
          expect(error).toBeInstanceOf(DomainError);
          expect((error as DomainError).code).toBe('LEASE.IP_NOT_ALLOWED');
          return;
        }
        expect(result).toMatch(CANONICAL_CIDR);
        expect(canonicalRule(result)).toBe(result);
        expect(canonicalRule(text)).toBe(result);
      }),
      { numRuns: 2000 },
    );
  });

  // No timing assertion: a pattern that backtracked on these would blow the test timeout.
  it('When given a very long string, then it is refused', () => {
    for (const text of [
      '1:'.repeat(50_000),
      '1.'.repeat(50_000),
      `8.8.8.8/${'3'.repeat(100_000)}`,
    ]) {
      refusal(() => parseLeaseIp(text, 24));
    }
  });
});

describe('canonicalRule', () => {
  it('When applied twice, then the result is the same as applying it once', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const once = canonicalRule(text);
        if (once !== undefined) {
          expect(once).toMatch(CANONICAL_CIDR);
          expect(canonicalRule(once)).toBe(once);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('When given an address x, then x and x/32 map to the same value', () => {
    fc.assert(
      fc.property(anyAddress, (value) => {
        const quad = toQuad(value);
        expect(canonicalRule(quad)).toBe(`${quad}/32`);
        expect(canonicalRule(`${quad}/32`)).toBe(`${quad}/32`);
      }),
    );
    fc.assert(
      fc.property(nearAddress, (text) => {
        fc.pre(!text.includes('/'));
        expect(canonicalRule(`${text.trim()}/32`)).toBe(canonicalRule(text));
      }),
    );
  });

  it('When given any CIDR, then it maps to the network address with the same prefix', () => {
    fc.assert(
      fc.property(anyAddress, fc.integer({ min: 0, max: 32 }), (value, prefix) => {
        expect(canonicalRule(`${toQuad(value)}/${prefix}`)).toBe(
          `${toQuad(networkOf(value, prefix))}/${prefix}`,
        );
      }),
    );
  });
});

describe('clientAddressFromForwardedFor', () => {
  const entry = fc.oneof(
    anyAddress.map(toQuad),
    fc
      .tuple(anyAddress, fc.integer({ min: 0, max: 65535 }))
      .map(([v, port]) => `${toQuad(v)}:${port}`),
    fc.ipV6(),
    fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 65535 })).map(([v6, port]) => `[${v6}]:${port}`),
    anyAddress.map((v) => `::ffff:${toQuad(v)}`),
    fc.string({ maxLength: 30 }),
  );

  it('When entries precede the last one, then the result depends only on the last entry', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(entry, fc.string({ unit: 'binary' })), { maxLength: 8 }),
        entry.filter((text) => !text.includes(',')),
        whitespace,
        (earlier, last, pad) => {
          const header = [...earlier, `${pad}${last}${pad}`].join(',');
          expect(clientAddressFromForwardedFor(header)).toBe(clientAddressFromForwardedFor(last));
        },
      ),
    );
  });

  it('When the last entry carries a control character or a non-ASCII space, then it is no address', () => {
    const control = fc.constantFrom('\n', '\r', '\u0000', '\u001f', '\u007f', '\u00a0', '\u2028');
    fc.assert(
      fc.property(anyAddress, control, fc.boolean(), (value, c, before) => {
        const quad = toQuad(value);
        const last = before ? `${c}${quad}` : `${quad}${c}`;
        expect(clientAddressFromForwardedFor(`203.0.113.9, ${last}`)).toBeUndefined();
      }),
    );
  });

  it('When the last entry is a.b.c.d or a.b.c.d:port, then the address without port is returned', () => {
    fc.assert(
      fc.property(anyAddress, fc.option(fc.integer({ min: 0, max: 65535 })), (value, port) => {
        const quad = toQuad(value);
        const text = port === null ? quad : `${quad}:${port}`;
        expect(clientAddressFromForwardedFor(`203.0.113.9, ${text}`)).toBe(quad);
      }),
    );
  });

  it('When the last entry is ::ffff:a.b.c.d, bracketed or not, then the IPv4 address is returned', () => {
    fc.assert(
      fc.property(anyAddress, fc.integer({ min: 0, max: 65535 }), (value, port) => {
        const quad = toQuad(value);
        expect(clientAddressFromForwardedFor(`::ffff:${quad}`)).toBe(quad);
        expect(clientAddressFromForwardedFor(`[::ffff:${quad}]:${port}`)).toBe(quad);
        expect(clientAddressFromForwardedFor(`[::FFFF:${quad}]`)).toBe(quad);
      }),
    );
  });

  it('When the last entry is [v6]:port, then it parses to the same address as the bare v6', () => {
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (v6, port) => {
        const bare = clientAddressFromForwardedFor(v6);
        expect(bare).toBeDefined();
        expect(clientAddressFromForwardedFor(`[${v6}]:${port}`)).toBe(bare);
        expect(clientAddressFromForwardedFor(`[${v6}]`)).toBe(bare);
      }),
    );
  });

  it('When given arbitrary garbage, then it never throws and returns a string or undefined', () => {
    fc.assert(
      fc.property(fc.option(anyText, { nil: undefined }), (header) => {
        const result = clientAddressFromForwardedFor(header);
        expect(result === undefined || typeof result === 'string').toBe(true);
        if (typeof result === 'string') expect(result.length).toBeGreaterThan(0);
      }),
      { numRuns: 2000 },
    );
    expect(clientAddressFromForwardedFor(null)).toBeUndefined();
    expect(clientAddressFromForwardedFor('')).toBeUndefined();
  });

  // No timing assertion: a pattern that backtracked on these would blow the test timeout.
  it('When the header holds thousands of entries, then the last one is found', () => {
    fc.assert(
      fc.property(
        fc.array(anyAddress.map(toQuad), { minLength: 5_000, maxLength: 20_000 }),
        publicAddress.map(toQuad),
        (earlier, last) => {
          const header = `${earlier.join(', ')}, ${last}`;
          expect(clientAddressFromForwardedFor(header)).toBe(last);
        },
      ),
      { numRuns: 20 },
    );
    const hostile = `${','.repeat(500_000)}${'9'.repeat(500_000)}`;
    expect(clientAddressFromForwardedFor(hostile)).toBeUndefined();
  });
});
