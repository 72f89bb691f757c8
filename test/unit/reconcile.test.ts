import { describe, expect, it } from 'vitest';

import { planRules } from '../../src/domain/rule-plan';

const lease = (id: string, ip: string, status: 'pending' | 'active' = 'active', createdAt = 0) => ({
  id,
  ip,
  status,
  createdAt,
});

describe('planRules', () => {
  it('When a pending lease is new, then its rule is added and owned before the write', () => {
    const plan = planRules({
      current: ['1.1.1.1/32'],
      owned: [],
      live: [lease('a', '52.0.0.1/32', 'pending')],
      maxRules: 1000,
    });
    expect(plan.changed).toBe(true);
    expect(plan.next).toEqual(['1.1.1.1/32', '52.0.0.1/32']);
    expect(plan.ownedBeforeWrite).toEqual(['52.0.0.1/32']);
    expect(plan.ownedAfterWrite).toEqual(['52.0.0.1/32']);
    expect(plan.applied).toEqual(['a']);
  });

  it('When a lease is for a static rule, then nothing is written and the rule is not owned', () => {
    const plan = planRules({
      current: ['52.0.0.1'],
      owned: [],
      live: [lease('a', '52.0.0.1/32', 'pending')],
      maxRules: 1000,
    });
    expect(plan.changed).toBe(false);
    expect(plan.ownedAfterWrite).toEqual([]);
    expect(plan.applied).toEqual(['a']);
  });

  it('When an owned rule has no live lease, then it is removed, and static rules stay verbatim', () => {
    const plan = planRules({
      current: ['1.1.1.1', '52.0.0.1/32', 'weird-value'],
      owned: ['52.0.0.1/32'],
      live: [],
      maxRules: 1000,
    });
    expect(plan.changed).toBe(true);
    expect(plan.next).toEqual(['weird-value', '1.1.1.1']);
    expect(plan.ownedBeforeWrite).toEqual(['52.0.0.1/32']);
    expect(plan.ownedAfterWrite).toEqual([]);
  });

  it('When an owned rule was removed behind the broker, then it is put back', () => {
    const plan = planRules({
      current: ['1.1.1.1/32'],
      owned: ['52.0.0.1/32'],
      live: [lease('a', '52.0.0.1/32')],
      maxRules: 1000,
    });
    expect(plan.changed).toBe(true);
    expect(plan.next).toEqual(['1.1.1.1/32', '52.0.0.1/32']);
  });

  it('When two leases hold one IP, then there is one rule', () => {
    const plan = planRules({
      current: [],
      owned: [],
      live: [lease('a', '52.0.0.1/32', 'pending', 1), lease('b', '52.0.0.1/32', 'pending', 2)],
      maxRules: 1000,
    });
    expect(plan.next).toEqual(['52.0.0.1/32']);
    expect(plan.applied.sort()).toEqual(['a', 'b']);
  });

  it('When the vault is full, then the newest pending leases are refused and active ones kept', () => {
    const plan = planRules({
      current: ['1.1.1.1/32', '52.0.0.1/32'],
      owned: ['52.0.0.1/32'],
      live: [
        lease('old', '52.0.0.1/32', 'active', 5),
        lease('p1', '52.0.0.2/32', 'pending', 1),
        lease('p2', '52.0.0.3/32', 'pending', 2),
      ],
      maxRules: 3,
    });
    expect(plan.next).toEqual(['1.1.1.1/32', '52.0.0.1/32', '52.0.0.2/32']);
    expect(plan.overCapacity).toEqual(['p2']);
    expect(plan.applied.sort()).toEqual(['old', 'p1']);
  });

  it('When the vault already matches, then nothing changes, whatever the rule spelling', () => {
    const plan = planRules({
      current: ['52.0.0.1', '1.1.1.0/24'],
      owned: ['52.0.0.1/32'],
      live: [lease('a', '52.0.0.1/32')],
      maxRules: 1000,
    });
    expect(plan.changed).toBe(false);
  });
});
