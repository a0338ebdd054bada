import type { GroupMeta, Membership } from "../domain/membership.ts";

/**
 * Port: where group metas and memberships (one item per membership) are kept, plus the sync run lock.
 * lib/adapters/membership-store.ts implements it on the DynamoDB table.
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
  /** true when this run now holds the lock; false when another unexpired run holds it. */
  acquireSyncLock(runId: string, ttlSeconds: number): Promise<boolean>;
  /** Releases the lock if this run still holds it; false when it did not. */
  releaseSyncLock(runId: string): Promise<boolean>;
}
