/**
 * Membership as our syncs observed it: the history that attribution needs (DESIGN.md, "Attribution").
 * Times are ISO 8601 instants; dates are calendar dates YYYY-MM-DD.
 */
export interface Membership {
  groupId: string;
  userId: string;
  role: string | null;
  primaryMember: boolean;
  defaultGroup: boolean;
  /** As of the last complete sync of the group. */
  active: boolean;
  /** From /members; null when the API did not send it. */
  joinedOn: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  /** The first sync that saw it exited after a sync had seen it active; null while active or never seen active. */
  exitSeenAt: string | null;
  /** The first sync that saw this membership already saw it exited: its dates are unknown, it never counts. */
  firstSeenExited: boolean;
  /** Earlier stints that ended in an observed exit before a rejoin (oldest first). */
  previousStints: { joinedOn: string | null; exitSeenAt: string }[];
}

export interface GroupMeta {
  groupId: string;
  externalId: string | null;
  name: string;
  /** ACTIVE | INACTIVE | DELETED as last synced, or GONE when the API answered 1632. */
  status: string;
  programs: { programId: string; loyaltyPoints: string; currentSlab: string | null }[];
  syncedAt: string;
}
