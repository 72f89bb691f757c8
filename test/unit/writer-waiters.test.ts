import { describe, expect, it } from 'vitest';

import type { Lease } from '../../src/domain/lease';
import { silentLogger } from '../../src/domain/logger';
import type { ManagedTarget } from '../../src/domain/target';
import type { FirewallRules, FirewallWrite } from '../../src/ports/target-firewall';
import { TargetCoordinator } from '../../src/writer/coordinator';
import { InMemoryLeaseStore } from '../fakes/lease-store';
import { InMemoryVaultFirewall } from '../fakes/vault-firewall';

/**
 * Which pass answers a waiter, in memory and step by step: a firewall whose
 * write is held until the test lets it go shows what a waiter that arrives
 * mid-pass is answered by. The randomized model (test/model) checks the
 * guarantees under any interleaving; this pins the cases a burst relies on.
 */
const VAULT: ManagedTarget = {
  kind: 'keyvault',
  name: 'kv-waiters',
  subscriptionId: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'rg',
  resourceId:
    '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-waiters',
};
const clock = { now: () => Date.now() };

/** A firewall whose writes wait at a gate the test opens. */
class HeldFirewall extends InMemoryVaultFirewall {
  private held: Array<() => void> = [];
  private arrived: Array<() => void> = [];

  /** Resolves once a write is waiting at the gate. */
  writeWaiting(): Promise<void> {
    if (this.held.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.arrived.push(resolve));
  }

  open(): void {
    for (const release of this.held.splice(0)) release();
  }

  override async write(
    vault: ManagedTarget,
    current: FirewallRules,
    next: string[],
  ): Promise<FirewallWrite> {
    await new Promise<void>((resolve) => {
      this.held.push(resolve);
      for (const notify of this.arrived.splice(0)) notify();
    });
    return super.write(vault, current, next);
  }
}

function world() {
  const store = new InMemoryLeaseStore();
  const firewall = new HeldFirewall();
  firewall.addVault(VAULT, {
    bypass: 'AzureServices',
    defaultAction: 'Deny',
    ipRules: [{ value: '20.40.60.80/32' }],
  });
  const coordinator = () =>
    new TargetCoordinator([VAULT], { store, firewall, clock, logger: silentLogger, pollMs: 10 });
  let next = 0;
  const record = async (ip: string): Promise<Lease> => {
    next += 1;
    const now = Date.now();
    const lease: Lease = {
      id: `${VAULT.name}.${String(next).padStart(24, '0')}`,
      vault: VAULT.name,
      ip,
      status: 'pending',
      principal: 'p',
      createdAt: now,
      expiresAt: now + 600_000,
    };
    return (await store.createLease(lease)).lease;
  };
  return { store, firewall, coordinator, record };
}

const deadline = () => Date.now() + 5_000;

describe("The writer's waiters", () => {
  it('When a grant registers after a pass read its lease, then that pass answers it, not the next one', async () => {
    const { store, firewall, coordinator, record } = world();
    const writer = coordinator();
    const first = await record('52.0.0.1/32');
    const late = await record('52.0.0.2/32'); // recorded before the pass reads the leases
    const answeredFirst = writer.sync(VAULT.name, deadline(), first.id);
    await firewall.writeWaiting(); // the pass has read the leases and is writing
    const answeredLate = writer.sync(VAULT.name, deadline(), late.id);
    firewall.open();

    const [one, two] = await Promise.all([answeredFirst, answeredLate]);
    expect(one?.activated.has(first.id)).toBe(true);
    expect(two?.activated.has(late.id)).toBe(true);
    expect(firewall.rules(VAULT)).toEqual(['20.40.60.80/32', '52.0.0.1/32', '52.0.0.2/32']);
    expect(store.vaultStateNow(VAULT.name).pass).toBe(1);
    await writer.shutdown();
  });

  it('When the lease was recorded after the pass read the leases, then the next pass answers it', async () => {
    const { store, firewall, coordinator, record } = world();
    const writer = coordinator();
    const first = await record('52.0.0.1/32');
    const answeredFirst = writer.sync(VAULT.name, deadline(), first.id);
    await firewall.writeWaiting();
    const late = await record('52.0.0.2/32');
    const answeredLate = writer.sync(VAULT.name, deadline(), late.id);
    firewall.open();
    await answeredFirst;
    expect(firewall.rules(VAULT)).not.toContain('52.0.0.2/32');

    await firewall.writeWaiting(); // a second pass writes the late lease's rule
    firewall.open();
    const two = await answeredLate;
    expect(two?.activated.has(late.id)).toBe(true);
    expect(firewall.rules(VAULT)).toContain('52.0.0.2/32');
    expect(store.vaultStateNow(VAULT.name).pass).toBe(2);
    await writer.shutdown();
  });

  it('When a pass of another instance applied the leases of many waiting grants, then one read of the store answers them all', async () => {
    const { store, firewall, coordinator, record } = world();
    const [writer, other] = [coordinator(), coordinator()];
    const leases = await Promise.all(
      Array.from({ length: 20 }, (_, n) => record(`52.0.1.${n + 1}/32`)),
    );
    const [head, ...rest] = leases;
    const answeredHead = writer.sync(VAULT.name, deadline(), head!.id);
    await firewall.writeWaiting(); // the writer's pass read all 20 leases
    const answeredRest = rest.map((lease) => other.sync(VAULT.name, deadline(), lease.id));
    // The other instance has seen the pass under way (its waiters aim at the next one).
    await new Promise((resolve) => setTimeout(resolve, 30));
    const before = {
      live: store.calls.get('liveLeases') ?? 0,
      one: store.calls.get('getLease') ?? 0,
    };
    firewall.open();

    await answeredHead;
    const outcomes = await Promise.all(answeredRest);
    outcomes.forEach((outcome, n) => expect(outcome?.activated.has(rest[n]!.id)).toBe(true));
    expect(store.vaultStateNow(VAULT.name).pass).toBe(1);
    expect((store.calls.get('liveLeases') ?? 0) - before.live).toBe(1);
    expect((store.calls.get('getLease') ?? 0) - before.one).toBe(0);
    await Promise.all([writer.shutdown(), other.shutdown()]);
  });

  it('When a release waits, then only a pass that read the store after the release answers it', async () => {
    const { store, firewall, coordinator, record } = world();
    const writer = coordinator();
    const lease = await record('52.0.0.9/32');
    const granting = writer.sync(VAULT.name, deadline(), lease.id);
    await firewall.writeWaiting();
    firewall.open();
    await granting;
    const granted = store.snapshot().get(lease.id);
    expect(granted?.status).toBe('active');

    const blocker = await record('52.0.0.10/32');
    const answeredBlocker = writer.sync(VAULT.name, deadline(), blocker.id);
    await firewall.writeWaiting(); // a pass that read the leases before the release
    const current = store.snapshot().get(lease.id)!;
    await store.endLease(current, 'released', Date.now());
    const released = writer.sync(VAULT.name, deadline());
    firewall.open();
    await answeredBlocker;
    expect(firewall.rules(VAULT)).toContain('52.0.0.9/32'); // that pass kept it

    await firewall.writeWaiting(); // the release needs a pass of its own
    firewall.open();
    await released;
    expect(firewall.rules(VAULT)).not.toContain('52.0.0.9/32');
    await writer.shutdown();
  });
});
