import type { Clock } from '../domain/clock';
import type { LeaseStore, VaultState } from '../ports/lease-store';

/** The writer lock was taken by someone else (or given up): the pass must stop writing. */
export class LostLock extends Error {
  constructor() {
    super('The writer lock of the vault was lost');
    this.name = 'LostLock';
  }
}

export interface HeldLockOptions {
  store: LeaseStore;
  vault: string;
  /** The target row as written by the conditional write that took the lock. */
  state: VaultState;
  clock: Clock;
  ttlMs: number;
  heartbeatMs: number;
  /** Calls are abandoned this long before the lock would expire. */
  marginMs: number;
}

/**
 * A target's writer lock while one pass holds it.
 *
 * - Every change of the target row goes through `update`, conditional on the
 *   row's version and serialised with the heartbeat, so the pass and its
 *   heartbeat never race each other; each one renews the lock.
 * - A heartbeat looks every `heartbeatMs` and renews the lock once a third
 *   of its lifetime has passed since the last renewal, so a short lifetime
 *   (a dead writer blocks its vault briefly) does not cut a slow pass short,
 *   and a short pass (whose own writes renew the lock) pays nothing extra.
 * - Firewall calls run through `call`: they are aborted when the lock is lost
 *   or `marginMs` before it would expire without a renewal (a hung store), so
 *   no call of this writer is still running once another writer may take over.
 */
export class HeldLock {
  private current: VaultState;
  private chain: Promise<unknown> = Promise.resolve();
  /** Aborts the firewall calls under way; replaced after a renewal that follows an expiry. */
  private controller = new AbortController();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private expiry: ReturnType<typeof setTimeout> | undefined;
  private beating = false;
  /** When the row was last written with a fresh `lockUntil` (by the clock). */
  private renewedAt: number;
  private done = false;
  /** Another writer holds the row now. */
  lost = false;
  /**
   * The lock would expire before a renewal could land: the firewall calls
   * under way were aborted, and no new one starts until a renewal succeeds.
   */
  expiring = false;

  constructor(private readonly options: HeldLockOptions) {
    this.current = options.state;
    this.renewedAt = options.state.lockUntil - options.ttlMs;
    this.scheduleExpiry();
    this.heartbeat = setInterval(() => {
      if (this.beating || this.done) return;
      // A pass that renewed the lock recently (its own writes renew it) needs no
      // extra write: short passes cost the store nothing more than before.
      if (this.options.clock.now() - this.renewedAt < this.options.ttlMs / 3) return;
      this.beating = true;
      // A failed renewal is not fatal by itself: the expiry timer stops the pass in time.
      this.update({})
        .catch(() => undefined)
        .finally(() => {
          this.beating = false;
        });
    }, options.heartbeatMs);
  }

  /** The target row as this writer last wrote it. */
  get state(): VaultState {
    return this.current;
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work, work);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private scheduleExpiry(): void {
    if (this.expiry !== undefined) clearTimeout(this.expiry);
    const left = this.current.lockUntil - this.options.clock.now() - this.options.marginMs;
    this.expiry = setTimeout(
      () => {
        this.expiring = true;
        this.controller.abort();
      },
      Math.max(0, left),
    );
  }

  /**
   * Conditional write of the row with `patch`, renewing the lock; throws
   * LostLock. It may succeed after the expiry timer fired (a slow store): the
   * write is conditional on the row's version, so success proves no other
   * writer took the lock meanwhile, and firewall calls may start again.
   */
  update(patch: Partial<VaultState>): Promise<VaultState> {
    return this.enqueue(async () => {
      if (this.done || this.lost) throw new LostLock();
      const sentAt = this.options.clock.now();
      const next = await this.options.store.putVaultState(this.options.vault, {
        ...this.current,
        ...patch,
        lockUntil: sentAt + this.options.ttlMs,
      });
      if (!next) {
        this.lost = true;
        this.stop();
        this.controller.abort();
        throw new LostLock();
      }
      this.current = next;
      this.renewedAt = sentAt;
      if (
        this.expiring &&
        this.current.lockUntil - this.options.clock.now() > this.options.marginMs
      ) {
        this.expiring = false;
        this.controller = new AbortController();
      }
      if (!this.done) this.scheduleExpiry();
      return next;
    });
  }

  /** The pass completed: write `patch` and free the lock in one conditional write. */
  finish(patch: Partial<VaultState>): Promise<VaultState | undefined> {
    return this.enqueue(async () => {
      if (this.done || this.lost) return undefined;
      this.stop();
      const next = await this.options.store.putVaultState(this.options.vault, {
        ...this.current,
        ...patch,
        lockHolder: '',
        lockUntil: 0,
      });
      if (next) this.current = next;
      else this.lost = true;
      return next;
    });
  }

  /**
   * Give the lock up (a failed pass, or shutdown): abort running calls, then
   * free the row if this writer still holds it. Never throws.
   */
  release(patch: Partial<VaultState> = {}): Promise<void> {
    const wasDone = this.done;
    this.stop();
    this.controller.abort();
    return this.enqueue(async () => {
      if (wasDone || this.lost) return;
      await this.options.store
        .putVaultState(this.options.vault, {
          ...this.current,
          ...patch,
          lockHolder: '',
          lockUntil: 0,
        })
        .catch(() => undefined);
    });
  }

  /**
   * Run a call with an abort signal that fires after `timeoutMs`, when the
   * lock is lost, or before it would expire unrenewed.
   */
  async call<T>(timeoutMs: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const local = new AbortController();
    const abort = () => local.abort();
    const timer = setTimeout(abort, timeoutMs);
    const lockSignal = this.controller.signal;
    if (lockSignal.aborted || this.done) local.abort();
    else lockSignal.addEventListener('abort', abort, { once: true });
    try {
      return await work(local.signal);
    } finally {
      clearTimeout(timer);
      lockSignal.removeEventListener('abort', abort);
    }
  }

  /** Stop the heartbeat and the expiry timer (the pass is over). */
  stop(): void {
    this.done = true;
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    if (this.expiry !== undefined) clearTimeout(this.expiry);
    this.heartbeat = undefined;
    this.expiry = undefined;
  }
}
