import type { Clock } from '../domain/clock';
import type { LeaseStore, VaultState } from '../ports/lease-store';

/**
 * The target rows (`PartitionKey` = vault, `RowKey` = `V`) as this process last
 * read or wrote them. Nothing the writer decides rests on them: they serve
 * estimates (capacity) and a try at the lock without a read first, which is
 * safe because the lock is taken by a write conditional on the row's version
 * (invariant 3 of docs/architecture.md, "The lock": a row changed since costs
 * one refused write).
 */

/** How old a row this process saw with the lock free may be for a try at the lock without a read. */
const ASSUME_ROW_MS = 2_000;

export class VaultRowCache {
  /** The target rows this process read or wrote last, for cheap approximate reads. */
  private readonly known = new Map<string, { state: VaultState; at: number }>();
  /** Reads of a target row under way for `approximate`, shared by its callers. */
  private readonly reading = new Map<string, Promise<VaultState>>();

  constructor(
    private readonly store: Pick<LeaseStore, 'getVaultState'>,
    private readonly clock: Clock,
  ) {}

  /**
   * The target row for estimates (capacity), never for decisions the writer
   * makes: as this process last saw it when that was at most `maxAgeMs` ago,
   * else one read of the store shared by every caller asking meanwhile (the
   * first grants of a burst on a broker that has not seen the target yet cost
   * one read, not one each).
   */
  approximate(vault: string, maxAgeMs: number): Promise<VaultState> {
    const known = this.seen(vault, maxAgeMs);
    if (known) return Promise.resolve(known);
    let reading = this.reading.get(vault);
    if (!reading) {
      reading = this.store
        .getVaultState(vault)
        .then((state) => this.remember(vault, state) ?? state)
        .finally(() => this.reading.delete(vault));
      this.reading.set(vault, reading);
    }
    return reading;
  }

  /** Note the target row as this process just read or wrote it (nothing when there is none). */
  remember(vault: string, state: VaultState | undefined): VaultState | undefined {
    if (state) this.known.set(vault, { state, at: this.clock.now() });
    return state;
  }

  /**
   * The target row as this process last wrote or read it with the lock free,
   * moments ago: the writer tries to take the lock from it without reading
   * the row first. The write is conditional on the row's version, so a row
   * changed since costs one refused write and then a read.
   */
  freeRow(vault: string): VaultState | undefined {
    const known = this.seen(vault, ASSUME_ROW_MS);
    return known?.lockHolder === '' ? known : undefined;
  }

  /** The target row as this process last read or wrote it, if that was at most `maxAgeMs` ago. */
  private seen(vault: string, maxAgeMs: number): VaultState | undefined {
    const known = this.known.get(vault);
    return known && this.clock.now() - known.at <= maxAgeMs ? known.state : undefined;
  }
}
