import { NetworkManagementClient } from '@azure/arm-network';

import { type Clock, systemClock } from '../../domain/clock';
import { armClientOptions, type ArmFirewallOptions, perSubscription } from '../arm';
import { type RegionRanges, regionRanges } from './same-region';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Downloads the regions' ranges through subscription `subscriptionId` (`location` picks the version only). */
export type ServiceTagFetch = (
  subscriptionId: string,
  location: string,
  signal: AbortSignal,
) => Promise<RegionRanges>;

export interface ServiceTagCacheOptions {
  fetch: ServiceTagFetch;
  clock?: Clock;
  /** A copy older than this is refreshed (in the background while it is still served). Default one day. */
  refreshMs?: number;
  /** How long a caller without any copy waits for a download before answering "unknown". Default 2 s. */
  waitMs?: number;
  /** After a failed download, the next one is tried no sooner than this. Default 15 minutes. */
  retryMs?: number;
  /** A download is abandoned after this long. Default 60 s. */
  fetchTimeoutMs?: number;
  /** Told of each failed download (the composition root logs it); the cache carries on without. */
  onRefreshFailed?: (error: unknown) => void;
}

/**
 * Azure's `AzureCloud.<region>` ranges for the same-region check, downloaded from the Service
 * Tag Discovery API (several MB, published weekly) at most once a day and shared by every
 * storage account of the cloud. It only ever feeds a warning, so it never fails or holds up
 * a grant: a failed download keeps the last good copy (or none), concurrent callers share one
 * download, and a caller without a copy waits at most `waitMs`, then answers `undefined` while
 * the download carries on for later callers.
 */
export class ServiceTagCache {
  private readonly clock: Clock;
  private readonly refreshMs: number;
  private readonly waitMs: number;
  private readonly retryMs: number;
  private readonly fetchTimeoutMs: number;
  private copy: { ranges: RegionRanges; at: number } | undefined;
  private inFlight: Promise<void> | undefined;
  private failedAt: number | undefined;

  constructor(private readonly options: ServiceTagCacheOptions) {
    this.clock = options.clock ?? systemClock;
    this.refreshMs = options.refreshMs ?? DAY_MS;
    this.waitMs = options.waitMs ?? 2000;
    this.retryMs = options.retryMs ?? 15 * 60 * 1000;
    this.fetchTimeoutMs = options.fetchTimeoutMs ?? 60_000;
  }

  /**
   * The ranges to check against: the current copy, a stale one while it is refreshed, or
   * `undefined` when there is none yet (or the first download takes longer than `waitMs`).
   * Never rejects. `subscriptionId` and `location` are those of the account asking: any
   * managed subscription may read the list, and every region comes back whatever the location.
   */
  async current(subscriptionId: string, location: string): Promise<RegionRanges | undefined> {
    const now = this.clock.now();
    const copy = this.copy;
    if (copy && now - copy.at < this.refreshMs) return copy.ranges;
    const download = this.download(subscriptionId, location, now);
    if (copy) return copy.ranges;
    if (!download) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.waitMs);
    });
    await Promise.race([download, bound]);
    clearTimeout(timer);
    return this.copy?.ranges;
  }

  /** The one download in flight, started when none is and the last failure is old enough. */
  private download(
    subscriptionId: string,
    location: string,
    now: number,
  ): Promise<void> | undefined {
    if (this.inFlight) return this.inFlight;
    if (this.failedAt !== undefined && now - this.failedAt < this.retryMs) return undefined;
    const signal = AbortSignal.timeout(this.fetchTimeoutMs);
    this.inFlight = this.options
      .fetch(subscriptionId, location, signal)
      .then(
        (ranges) => {
          this.copy = { ranges, at: this.clock.now() };
          this.failedAt = undefined;
        },
        (error: unknown) => {
          this.failedAt = this.clock.now();
          this.options.onRefreshFailed?.(error);
        },
      )
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }
}

/** The download through `@azure/arm-network` `serviceTags.list`, one client per subscription. */
export function armServiceTagFetch(options: ArmFirewallOptions): ServiceTagFetch {
  const client = perSubscription(
    (subscriptionId) =>
      new NetworkManagementClient(options.credential, subscriptionId, armClientOptions(options)),
  );
  return async (subscriptionId, location, signal) => {
    const result = await client(subscriptionId).serviceTags.list(location, {
      abortSignal: signal,
    });
    return regionRanges(result.values ?? []);
  };
}
