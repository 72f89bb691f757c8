import type { ManagedTarget } from '../domain/target';

/** After a failed lookup, answers go without the address for this long rather than each waiting on a failing read. */
const RETRY_MS = 30_000;

/**
 * A target's data-plane address as its Resource Manager GET gives it (a
 * vault's `vaultUri`, an account's blob endpoint): fixed for the target's
 * life, so kept once seen; every writer pass's read refreshes it for free.
 */
export class DataPlaneCache {
  private readonly known = new Map<string, string>();
  private readonly failedAt = new Map<string, number>();

  seen(target: ManagedTarget, address: string | undefined): void {
    if (address) this.known.set(target.resourceId.toLowerCase(), address);
  }

  /** The address, reading the target once (`read`, which calls `seen`) when none was seen. */
  async lookup(target: ManagedTarget, read: () => Promise<unknown>): Promise<string | undefined> {
    const key = target.resourceId.toLowerCase();
    const known = this.known.get(key);
    if (known) return known;
    // NOTE: while Resource Manager fails, one try per target every 30 s.
    if (Date.now() - (this.failedAt.get(key) ?? 0) < RETRY_MS) return undefined;
    try {
      await read();
    } catch (error) {
      this.failedAt.set(key, Date.now());
      throw error;
    }
    return this.known.get(key);
  }
}
