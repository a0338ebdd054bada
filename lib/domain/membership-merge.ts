import type { CapillaryGroupUser, CapillaryMember } from "../ports.ts";
import type { Membership } from "./membership.ts";

/**
 * One COMPLETE observation of a group: `users` is the group's `fleetGroupUsers` (authoritative for
 * active/exited), `members` every page of `/members` (joinedOn and role). A group the API no longer knows
 * (error 1632) is observed as `users: [], members: []`: every active membership is then swept to exited.
 * Never pass a partial observation: mark-and-sweep would record false exits.
 */
export interface GroupObservation {
  groupId: string;
  users: readonly CapillaryGroupUser[];
  members: readonly CapillaryMember[];
}

export class MembershipMergeError extends Error {
  readonly code = "MEMBERSHIP_GROUP_MISMATCH";
  constructor(message: string) {
    super(message);
    this.name = "MembershipMergeError";
  }
}

/**
 * Merge an observation into the group's known memberships (DESIGN.md "Attribution") and return every item
 * that is new or changed, to be written. Nothing is ever deleted. `now` is the sync's ISO instant.
 *
 * - New & active: firstSeenAt = lastSeenAt = now. New & exited: firstSeenExited (never attributed).
 * - Known & active: lastSeenAt = now; joinedOn/role from /members (kept when not sent), primary/default
 *   from fleetGroupUsers. Exited before (exitSeenAt set): a rejoin, the old stint goes to previousStints.
 * - Known active, seen exited or not returned at all: active = false, exitSeenAt = now.
 * - Already exited and still exited: unchanged, not returned (lastSeenAt is the last time seen active).
 */
export function mergeGroupObservation(
  previous: readonly Membership[],
  observation: GroupObservation,
  now: string,
): Membership[] {
  const { groupId } = observation;
  const known = new Map<string, Membership>();
  for (const m of previous) {
    if (m.groupId !== groupId) {
      throw new MembershipMergeError(`membership of group ${m.groupId} merged into group ${groupId}`);
    }
    known.set(m.userId, m);
  }

  const users = new Map<string, CapillaryGroupUser>();
  for (const u of observation.users) users.set(u.userId, u);
  const members = new Map<string, CapillaryMember>();
  for (const m of observation.members) members.set(m.userId, m);

  const observed = new Set<string>([...users.keys(), ...members.keys()]);
  const out: Membership[] = [];

  for (const userId of observed) {
    const user = users.get(userId);
    const member = members.get(userId);
    const active = user ? user.active : true;
    const prev = known.get(userId);
    const next = prev
      ? mergeKnown(prev, active, user, member, now)
      : createNew(groupId, userId, active, user, member, now);
    if (next) out.push(next);
  }

  // Sweep: a membership active before and absent from this complete observation has exited.
  for (const prev of known.values()) {
    if (!observed.has(prev.userId) && prev.active) out.push(exit(prev, now));
  }
  return out;
}

function createNew(
  groupId: string,
  userId: string,
  active: boolean,
  user: CapillaryGroupUser | undefined,
  member: CapillaryMember | undefined,
  now: string,
): Membership {
  return {
    groupId,
    userId,
    role: member?.role ?? null,
    primaryMember: user?.primaryMember ?? member?.primaryMember ?? false,
    defaultGroup: user?.defaultGroup ?? false,
    active,
    joinedOn: member?.joinedOn ?? null,
    firstSeenAt: now,
    lastSeenAt: now,
    exitSeenAt: null,
    firstSeenExited: !active,
    previousStints: [],
  };
}

function mergeKnown(
  prev: Membership,
  active: boolean,
  user: CapillaryGroupUser | undefined,
  member: CapillaryMember | undefined,
  now: string,
): Membership | null {
  if (!active) return prev.active ? exit(prev, now) : null;

  const endedAt = prev.active ? null : prev.exitSeenAt;
  const rejoin = endedAt !== null;
  const previousStints = prev.previousStints.map((s) => ({ ...s }));
  if (endedAt !== null) previousStints.push({ joinedOn: prev.joinedOn, exitSeenAt: endedAt });
  return {
    groupId: prev.groupId,
    userId: prev.userId,
    role: member?.role ?? prev.role,
    primaryMember: user?.primaryMember ?? member?.primaryMember ?? prev.primaryMember,
    defaultGroup: user?.defaultGroup ?? prev.defaultGroup,
    active: true,
    // After a rejoin the old join date belongs to the old stint: never carry it over.
    joinedOn: member?.joinedOn ?? (rejoin ? null : prev.joinedOn),
    firstSeenAt: prev.firstSeenAt,
    lastSeenAt: now,
    exitSeenAt: null,
    firstSeenExited: false,
    previousStints,
  };
}

function exit(prev: Membership, now: string): Membership {
  return {
    ...prev,
    previousStints: prev.previousStints.map((s) => ({ ...s })),
    active: false,
    exitSeenAt: now,
  };
}
