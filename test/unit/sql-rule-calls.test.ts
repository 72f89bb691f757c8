import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  listing,
  type RuleCall,
  ruleCalls,
  type SqlRule,
  summary,
} from '../../src/targets/sql/rule-calls';

/*
 * The oracle is a server kept by hand: rules by lower-cased name (Azure SQL
 * compares names case-insensitively), a PUT replaces or adds, a DELETE removes.
 */
function apply(rules: readonly SqlRule[], calls: readonly RuleCall[]): SqlRule[] {
  const byName = new Map(rules.map((rule) => [rule.name.toLowerCase(), rule]));
  for (const call of calls) {
    const key = call.name.toLowerCase();
    if (call.method === 'DELETE') byName.delete(key);
    else
      byName.set(key, {
        name: byName.get(key)?.name ?? call.name,
        startIpAddress: call.startIpAddress,
        endIpAddress: call.endIpAddress,
      });
  }
  return [...byName.values()];
}

const octet = fc.integer({ min: 0, max: 3 });
const address = fc.tuple(octet, octet).map(([c, d]) => `52.1.${c}.${d}`);
/** A few /32s and one /30, so that ranges collide often. */
const cidr = fc.oneof(
  address.map((a) => `${a}/32`),
  fc.constant('52.1.0.0/30'),
);

const foreign = fc.record({
  name: fc.constantFrom('AllowAllWindowsAzureIps', 'office', 'lease-52.1.0.1-32', 'vpn'),
  startIpAddress: address,
  endIpAddress: address,
});
/** Broker rules as anyone may have left them: right, wrong range, odd name, another case. */
const broker = fc.oneof(
  address.map((a) => ({ name: `kvlease-${a}-32`, startIpAddress: a, endIpAddress: a })),
  fc
    .tuple(address, address)
    .map(([a, b]) => ({ name: `kvlease-${a}-32`, startIpAddress: a, endIpAddress: b })),
  address.map((a) => ({ name: `kvlease-${a}-32-copy`, startIpAddress: a, endIpAddress: a })),
  address.map((a) => ({ name: `KVLEASE-${a}-32`, startIpAddress: a, endIpAddress: a })),
  fc.constant({
    name: 'kvlease-52.1.0.0-30',
    startIpAddress: '52.1.0.0',
    endIpAddress: '52.1.0.3',
  }),
);

/** A server's rules: unique names (case-insensitively), as Azure keeps them. */
const server = fc
  .tuple(fc.array(foreign, { maxLength: 4 }), fc.array(broker, { maxLength: 8 }))
  .map(([others, ours]) => {
    const byName = new Map<string, SqlRule>();
    for (const rule of [...others, ...ours]) byName.set(rule.name.toLowerCase(), rule);
    return [...byName.values()];
  });

describe('SQL rule calls', () => {
  it('When any server is brought to any set of CIDRs, then its broker rules are exactly those CIDRs, clean, and no other rule is touched', () => {
    fc.assert(
      fc.property(
        server,
        fc.uniqueArray(cidr, { maxLength: 6 }),
        fc.boolean(),
        (rules, next, trustRead) => {
          const list = listing(rules);
          const trusted = trustRead ? summary(list).rules : [];
          const calls = ruleCalls(list, trusted, next, 128);
          const after = apply(
            rules,
            calls.rounds.flatMap((round) => round),
          );
          const afterList = listing(after);

          expect(summary(afterList)).toEqual({ rules: [...next].sort(), dirty: false });
          expect(after.filter((rule) => !rule.name.toLowerCase().startsWith('kvlease-'))).toEqual(
            rules.filter((rule) => !rule.name.toLowerCase().startsWith('kvlease-')),
          );
          for (const call of [...calls.puts, ...calls.deletes])
            expect(call.name.toLowerCase().startsWith('kvlease-')).toBe(true);
          const putNames = new Set(calls.puts.map((call) => call.name.toLowerCase()));
          for (const call of calls.deletes)
            expect(putNames.has(call.name.toLowerCase())).toBe(false);
          // Rounds hold every call once.
          expect(calls.rounds.flat()).toHaveLength(calls.puts.length + calls.deletes.length);
        },
      ),
    );
  });

  it('When the listing is trusted and already right, then there are no calls; when nothing is trusted, then every needed rule is PUT and none deleted', () => {
    const rules: SqlRule[] = [
      { name: 'kvlease-52.1.0.1-32', startIpAddress: '52.1.0.1', endIpAddress: '52.1.0.1' },
      { name: 'office', startIpAddress: '52.1.0.2', endIpAddress: '52.1.0.2' },
    ];
    const list = listing(rules);

    const settled = ruleCalls(list, ['52.1.0.1/32'], ['52.1.0.1/32'], 128);
    const reasserted = ruleCalls(list, [], ['52.1.0.1/32'], 128);

    expect(settled).toEqual({ puts: [], deletes: [], rounds: [] });
    expect(reasserted.puts.map((call) => call.name)).toEqual(['kvlease-52.1.0.1-32']);
    expect(reasserted.deletes).toEqual([]);
  });

  it('When a write re-asserts under a fresh generation, then every wanted range is PUT under a new name first, and every other broker rule (the old names too) is DELETEd after', () => {
    const rules: SqlRule[] = [
      { name: 'kvlease-52.1.0.1-32', startIpAddress: '52.1.0.1', endIpAddress: '52.1.0.1' },
      { name: 'kvlease-52.1.0.1-32-gold', startIpAddress: '52.1.0.1', endIpAddress: '52.1.0.1' },
      { name: 'kvlease-52.1.0.9-32', startIpAddress: '52.1.0.9', endIpAddress: '52.1.0.9' },
      { name: 'office', startIpAddress: '52.1.0.2', endIpAddress: '52.1.0.2' },
    ];
    const list = listing(rules);

    const calls = ruleCalls(list, [], ['52.1.0.1/32', '52.1.0.3/32'], 128, 'abc123');

    expect(calls.rounds.map((round) => round.map((call) => `${call.method} ${call.name}`))).toEqual(
      [
        ['PUT kvlease-52.1.0.1-32-gabc123', 'PUT kvlease-52.1.0.3-32-gabc123'],
        [
          'DELETE kvlease-52.1.0.1-32',
          'DELETE kvlease-52.1.0.1-32-gold',
          'DELETE kvlease-52.1.0.9-32',
        ],
      ],
    );
    // Two rules on one range are dirty until a settled write keeps one (the shortest name).
    const twice = listing(rules.slice(0, 2));
    expect(summary(twice)).toEqual({ rules: ['52.1.0.1/32'], dirty: true });
    expect(
      ruleCalls(twice, ['52.1.0.1/32'], ['52.1.0.1/32'], 128).rounds.map((round) =>
        round.map((call) => `${call.method} ${call.name}`),
      ),
    ).toEqual([['DELETE kvlease-52.1.0.1-32-gold']]);
  });

  it('When the new rules fit beside those being deleted, then all calls go in one round; when they do not, then the DELETEs go first', () => {
    const ours: SqlRule[] = [
      { name: 'kvlease-52.1.0.1-32', startIpAddress: '52.1.0.1', endIpAddress: '52.1.0.1' },
    ];
    const others = (count: number): SqlRule[] =>
      Array.from({ length: count }, (_, i) => ({
        name: `other-${i}`,
        startIpAddress: `40.0.0.${i}`,
        endIpAddress: `40.0.0.${i}`,
      }));

    const roomy = ruleCalls(
      listing([...others(10), ...ours]),
      ['52.1.0.1/32'],
      ['52.1.0.2/32'],
      12,
    );
    const full = ruleCalls(listing([...others(11), ...ours]), ['52.1.0.1/32'], ['52.1.0.2/32'], 12);
    const onlyPuts = ruleCalls(listing(others(11)), [], ['52.1.0.2/32'], 12);

    expect(roomy.rounds.map((round) => round.map((call) => call.method))).toEqual([
      ['DELETE', 'PUT'],
    ]);
    expect(full.rounds.map((round) => round.map((call) => call.method))).toEqual([
      ['DELETE'],
      ['PUT'],
    ]);
    expect(onlyPuts.rounds.map((round) => round.map((call) => call.method))).toEqual([['PUT']]);
  });

  it('When a broker rule in another case holds a needed range, then it is kept, not replaced by a second rule', () => {
    const list = listing([
      { name: 'KVLease-52.1.0.1-32', startIpAddress: '52.1.0.1', endIpAddress: '52.1.0.1' },
    ]);
    expect(summary(list)).toEqual({ rules: ['52.1.0.1/32'], dirty: false });
    expect(ruleCalls(list, ['52.1.0.1/32'], ['52.1.0.1/32'], 128).rounds).toEqual([]);
  });

  it('When next holds a bare address, then its /32 rule is PUT; when it holds anything but IPv4, then no calls are planned', () => {
    expect(ruleCalls(listing([]), [], ['52.1.0.1'], 128).puts.map((call) => call.name)).toEqual([
      'kvlease-52.1.0.1-32',
    ]);
    expect(() => ruleCalls(listing([]), [], ['office'], 128)).toThrow(/Not an IPv4/);
    expect(() => ruleCalls(listing([]), [], ['2001:db8::1'], 128)).toThrow(/Not an IPv4/);
  });
});
