/**
 * A firewall reaches a data plane late: each management write takes effect only after a
 * propagation delay, and until then the previous state holds. This keeps, per resource, the
 * versions not yet superseded by one already in force.
 */
interface Version<S> {
  /** Epoch ms from which this version is what the data plane enforces. */
  effectiveAt: number;
  state: S;
}

export class Propagation<S> {
  private readonly versions = new Map<string, Version<S>[]>();

  constructor(private readonly now: () => number) {}

  /**
   * A new resource's state holds at once; a change holds from `now + delayMs`; a state equal to
   * the latest one recorded is no change.
   */
  record(key: string, state: S, delayMs: number): void {
    const now = this.now();
    const history = this.versions.get(key) ?? [];
    const latest = history[history.length - 1];
    if (latest && JSON.stringify(latest.state) === JSON.stringify(state)) return;
    history.push({ effectiveAt: latest ? now + delayMs : now, state });
    // Versions older than the newest one already in force can never be enforced again.
    const inForce = inForceIndex(history, now);
    this.versions.set(key, inForce > 0 ? history.slice(inForce) : history);
  }

  /** The state enforced now, undefined for a key never recorded. */
  enforced(key: string): S | undefined {
    const history = this.versions.get(key) ?? [];
    return history[inForceIndex(history, this.now())]?.state;
  }
}

function inForceIndex<S>(history: readonly Version<S>[], now: number): number {
  for (let index = history.length - 1; index >= 0; index -= 1) {
    if ((history[index]?.effectiveAt ?? Infinity) <= now) return index;
  }
  return -1;
}
