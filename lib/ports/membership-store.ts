import type { GroupMeta, Membership } from "../domain/membership.ts";

/**
 * A sync run that may span several invocations (`SYNC#RUN` / `RUN`): the run's group list is stored
 * beside it in chunks; entries [0, cursor) are done. Counters are cumulative over the run.
 */
export interface SyncRunState {
  runId: string;
  startedAt: string;
  updatedAt: string;
  status: "running" | "complete";
  /** Entries in the run's list: group ids, and `ext:<externalId>` entries resolved when synced. */
  total: number;
  cursor: number;
  /** Where the known-groups phase starts in the list; null until the discovered groups are all done. */
  sweepStart: number | null;
  invocations: number;
  synced: number;
  gone: number;
  failed: number;
  /** The first failed group ids (at most 100), for the operator. */
  failedSample: string[];
  membershipsWritten: number;
  exitsObserved: number;
  discoveryFailures: number;
  unresolvedExternalIds: number;
}

/**
 * Port: where group metas and memberships (one item per membership) are kept, plus the sync run lock and
 * the run checkpoint. lib/adapters/membership-store.ts implements it on the DynamoDB table.
 */
export interface MembershipStore {
  /** Every membership of one group (all pages), validated. */
  getGroupMemberships(groupId: string): Promise<Membership[]>;
  /** Writes the items (duplicates by key removed, last wins); resolves to the number of items written. */
  putMemberships(items: readonly Membership[]): Promise<number>;
  getGroupMeta(groupId: string): Promise<GroupMeta | null>;
  putGroupMeta(meta: GroupMeta): Promise<void>;
  listGroupMetas(): Promise<GroupMeta[]>;
  /** Every membership of every group, streamed (for the aggregation). */
  listAllMemberships(): AsyncIterable<Membership>;
  /**
   * true when `owner` now holds the lock (the holder calling again renews it to now + ttl); false when
   * another unexpired owner holds it.
   */
  acquireSyncLock(owner: string, ttlSeconds: number): Promise<boolean>;
  /** Releases the lock if `owner` still holds it; false when it did not. */
  releaseSyncLock(owner: string): Promise<boolean>;
  /** The current (or last) sync run, or null. */
  getSyncRun(): Promise<SyncRunState | null>;
  /** The run's list of entries (`total` of them), as saved by putSyncRun. */
  getSyncRunList(runId: string, total: number): Promise<string[]>;
  /**
   * Saves the run state (and, when given, its whole list), only while `owner` holds the lock: throws
   * SYNC_LOCK_LOST otherwise, so an invocation whose lock expired cannot overwrite a newer one's progress.
   */
  putSyncRun(owner: string, state: SyncRunState, list?: readonly string[]): Promise<void>;
}
