import type { LeaseStore, StoredLease } from '../ports/lease-store';

/** From this many leases of one vault asked for at once, one range read beats point reads. */
const RANGE_READ_FROM = 8;

/**
 * The leases `ids` of one vault as the store holds them now (undefined: no
 * such lease). Many at once (a burst's grants answered by one pass) cost one
 * range read of the target's live leases, plus a point read for each that has
 * ended; a few cost a point read each.
 */
export async function readLeases(
  store: Pick<LeaseStore, 'liveLeases' | 'getLease'>,
  vault: string,
  ids: readonly string[],
): Promise<Map<string, StoredLease | undefined>> {
  const live =
    ids.length >= RANGE_READ_FROM
      ? new Map((await store.liveLeases(vault)).map((lease) => [lease.id, lease]))
      : new Map<string, StoredLease>();
  const read = await Promise.all(
    ids.map(async (id) => [id, live.get(id) ?? (await store.getLease(id, vault))] as const),
  );
  return new Map(read);
}
