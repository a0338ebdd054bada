import type { Membership } from "../../lib/domain/membership.ts";

/** An active, non-default SECONDARY membership joined on 2024-01-01; `over` changes any field. */
export function membership(groupId: string, userId: string, over: Partial<Membership> = {}): Membership {
  return {
    groupId,
    userId,
    role: "SECONDARY",
    primaryMember: false,
    defaultGroup: false,
    active: true,
    joinedOn: "2024-01-01",
    firstSeenAt: "2024-01-02T00:00:00.000Z",
    lastSeenAt: "2024-01-02T00:00:00.000Z",
    exitSeenAt: null,
    firstSeenExited: false,
    previousStints: [],
    ...over,
  };
}
