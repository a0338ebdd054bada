import { describe, expect, it } from "vitest";
import type { Membership } from "../../lib/domain/membership.ts";
import { MembershipMergeError, mergeGroupObservation } from "../../lib/domain/membership-merge.ts";
import type { CapillaryGroupUser, CapillaryMember } from "../../lib/ports.ts";

const G = "700001";
const T0 = "2024-01-10T02:00:00.000Z";
const T1 = "2024-02-10T02:00:00.000Z";
const T2 = "2024-03-10T02:00:00.000Z";

function user(userId: string, active: boolean, extra: Partial<CapillaryGroupUser> = {}): CapillaryGroupUser {
  return { userId, active, primaryMember: false, defaultGroup: false, ...extra };
}

function member(
  userId: string,
  joinedOn: string | null,
  extra: Partial<CapillaryMember> = {},
): CapillaryMember {
  return { userId, joinedOn, role: "SECONDARY", permissions: [], primaryMember: false, ...extra };
}

function known(userId: string, extra: Partial<Membership> = {}): Membership {
  return {
    groupId: G,
    userId,
    role: "SECONDARY",
    primaryMember: false,
    defaultGroup: false,
    active: true,
    joinedOn: "2023-12-01",
    firstSeenAt: T0,
    lastSeenAt: T0,
    exitSeenAt: null,
    firstSeenExited: false,
    previousStints: [],
    ...extra,
  };
}

function byUser(items: Membership[]): Map<string, Membership> {
  return new Map(items.map((m) => [m.userId, m]));
}

/** Applies written items over the previous state, as the store would. */
function apply(previous: Membership[], written: Membership[]): Membership[] {
  const state = byUser(previous);
  for (const m of written) state.set(m.userId, m);
  return [...state.values()];
}

describe("mergeGroupObservation: new memberships", () => {
  it("new and active in both sources: first/last seen now, fields from both", () => {
    const out = mergeGroupObservation(
      [],
      {
        groupId: G,
        users: [user("1", true, { primaryMember: true, defaultGroup: true })],
        members: [member("1", "2024-01-05", { role: "PRIMARY", primaryMember: true })],
      },
      T1,
    );
    expect(out).toEqual([
      {
        groupId: G,
        userId: "1",
        role: "PRIMARY",
        primaryMember: true,
        defaultGroup: true,
        active: true,
        joinedOn: "2024-01-05",
        firstSeenAt: T1,
        lastSeenAt: T1,
        exitSeenAt: null,
        firstSeenExited: false,
        previousStints: [],
      },
    ]);
  });

  it("a user only in /members counts as active", () => {
    const [m] = mergeGroupObservation(
      [],
      { groupId: G, users: [], members: [member("2", "2024-01-06", { primaryMember: true })] },
      T1,
    );
    expect(m).toMatchObject({ userId: "2", active: true, joinedOn: "2024-01-06", primaryMember: true });
    expect(m?.defaultGroup).toBe(false);
    expect(m?.firstSeenExited).toBe(false);
  });

  it("a user active in fleetGroupUsers but missing from /members: active, dates unknown", () => {
    const [m] = mergeGroupObservation([], { groupId: G, users: [user("3", true)], members: [] }, T1);
    expect(m).toMatchObject({ userId: "3", active: true, joinedOn: null, role: null, firstSeenAt: T1 });
  });

  it("new and exited: firstSeenExited, never an exitSeenAt", () => {
    const [m] = mergeGroupObservation([], { groupId: G, users: [user("4", false)], members: [] }, T1);
    expect(m).toMatchObject({
      userId: "4",
      active: false,
      firstSeenExited: true,
      exitSeenAt: null,
      firstSeenAt: T1,
      lastSeenAt: T1,
    });
  });

  it("fleetGroupUsers' active:false wins over presence in /members", () => {
    const [m] = mergeGroupObservation(
      [],
      { groupId: G, users: [user("5", false)], members: [member("5", "2024-01-01")] },
      T1,
    );
    expect(m).toMatchObject({ active: false, firstSeenExited: true, joinedOn: "2024-01-01" });
  });
});

describe("mergeGroupObservation: known memberships", () => {
  it("known and active: lastSeenAt now, joinedOn/role/default/primary updated, firstSeenAt kept", () => {
    const prev = [known("1")];
    const [m] = mergeGroupObservation(
      prev,
      {
        groupId: G,
        users: [user("1", true, { primaryMember: true, defaultGroup: true })],
        members: [member("1", "2023-12-02", { role: "PRIMARY" })],
      },
      T1,
    );
    expect(m).toMatchObject({
      active: true,
      firstSeenAt: T0,
      lastSeenAt: T1,
      joinedOn: "2023-12-02",
      role: "PRIMARY",
      primaryMember: true,
      defaultGroup: true,
      exitSeenAt: null,
      previousStints: [],
    });
  });

  it("known and active without a /members row or joinedOn keeps the known joinedOn and role", () => {
    const prev = [known("1", { role: "PRIMARY" }), known("2")];
    const out = byUser(
      mergeGroupObservation(
        prev,
        { groupId: G, users: [user("1", true), user("2", true)], members: [member("2", null)] },
        T1,
      ),
    );
    expect(out.get("1")).toMatchObject({ joinedOn: "2023-12-01", role: "PRIMARY", lastSeenAt: T1 });
    expect(out.get("2")).toMatchObject({ joinedOn: "2023-12-01", lastSeenAt: T1 });
  });

  it("known active, seen exited: active false, exitSeenAt now, lastSeenAt unchanged", () => {
    const [m] = mergeGroupObservation(
      [known("1")],
      { groupId: G, users: [user("1", false)], members: [] },
      T1,
    );
    expect(m).toMatchObject({ active: false, exitSeenAt: T1, lastSeenAt: T0, joinedOn: "2023-12-01" });
  });

  it("exitSeenAt is the first exited observation only: a later exited observation writes nothing", () => {
    const prev = [known("1", { active: false, exitSeenAt: T1 })];
    const out = mergeGroupObservation(prev, { groupId: G, users: [user("1", false)], members: [] }, T2);
    expect(out).toEqual([]);
  });

  it("rejoin: the old stint moves to previousStints, exitSeenAt cleared, new joinedOn", () => {
    const prev = [known("1", { active: false, exitSeenAt: T1, joinedOn: "2023-12-01" })];
    const [m] = mergeGroupObservation(
      prev,
      { groupId: G, users: [user("1", true)], members: [member("1", "2024-03-01")] },
      T2,
    );
    expect(m).toMatchObject({
      active: true,
      joinedOn: "2024-03-01",
      exitSeenAt: null,
      lastSeenAt: T2,
      firstSeenAt: T0,
      previousStints: [{ joinedOn: "2023-12-01", exitSeenAt: T1 }],
    });
  });

  it("rejoin without a joinedOn does not carry the old stint's joinedOn", () => {
    const prev = [known("1", { active: false, exitSeenAt: T1 })];
    const [m] = mergeGroupObservation(prev, { groupId: G, users: [user("1", true)], members: [] }, T2);
    expect(m?.joinedOn).toBeNull();
    expect(m?.previousStints).toEqual([{ joinedOn: "2023-12-01", exitSeenAt: T1 }]);
  });

  it("several exits and rejoins keep every stint, oldest first", () => {
    const T3 = "2024-04-10T02:00:00.000Z";
    const T4 = "2024-05-10T02:00:00.000Z";
    let state = [known("1", { joinedOn: "2024-01-01" })];
    const steps: [string, boolean, string | null][] = [
      [T1, false, null],
      [T2, true, "2024-03-01"],
      [T3, false, null],
      [T4, true, "2024-05-01"],
    ];
    for (const [at, active, joinedOn] of steps) {
      const members = active ? [member("1", joinedOn)] : [];
      state = apply(
        state,
        mergeGroupObservation(state, { groupId: G, users: [user("1", active)], members }, at),
      );
    }
    expect(state[0]).toMatchObject({
      active: true,
      joinedOn: "2024-05-01",
      exitSeenAt: null,
      previousStints: [
        { joinedOn: "2024-01-01", exitSeenAt: T1 },
        { joinedOn: "2024-03-01", exitSeenAt: T3 },
      ],
    });
  });

  it("first seen exited, then active: firstSeenExited cleared, no stint invented", () => {
    const prev = [
      known("1", { active: false, firstSeenExited: true, joinedOn: null, role: null, firstSeenAt: T0 }),
    ];
    const [m] = mergeGroupObservation(
      prev,
      { groupId: G, users: [user("1", true)], members: [member("1", "2024-02-01")] },
      T1,
    );
    expect(m).toMatchObject({
      active: true,
      firstSeenExited: false,
      exitSeenAt: null,
      joinedOn: "2024-02-01",
      firstSeenAt: T0,
      lastSeenAt: T1,
      previousStints: [],
    });
  });

  it("first seen exited and still exited, or not returned: nothing to write", () => {
    const prev = [
      known("1", { active: false, firstSeenExited: true }),
      known("2", { active: false, firstSeenExited: true }),
    ];
    expect(mergeGroupObservation(prev, { groupId: G, users: [user("1", false)], members: [] }, T1)).toEqual(
      [],
    );
  });
});

describe("mergeGroupObservation: mark and sweep", () => {
  it("an active membership not returned by a complete observation is exited, never deleted", () => {
    const prev = [known("1"), known("2"), known("3", { active: false, exitSeenAt: T0 })];
    const out = byUser(
      mergeGroupObservation(prev, { groupId: G, users: [user("1", true)], members: [] }, T1),
    );
    expect(out.get("1")).toMatchObject({ active: true, lastSeenAt: T1 });
    expect(out.get("2")).toMatchObject({ active: false, exitSeenAt: T1, lastSeenAt: T0 });
    expect(out.has("3")).toBe(false);
    expect(out.size).toBe(2);
  });

  it("a group that is gone (empty observation) exits every active membership", () => {
    const prev = [known("1"), known("2"), known("3", { active: false, exitSeenAt: T0 })];
    const out = mergeGroupObservation(prev, { groupId: G, users: [], members: [] }, T1);
    expect(out.map((m) => [m.userId, m.active, m.exitSeenAt])).toEqual([
      ["1", false, T1],
      ["2", false, T1],
    ]);
  });

  it("the same observation twice: the second exits nobody and only refreshes lastSeenAt", () => {
    const obs = {
      groupId: G,
      users: [user("1", true), user("2", false)],
      members: [member("1", "2024-01-01"), member("3", "2024-01-02")],
    };
    const first = mergeGroupObservation([known("9")], obs, T1);
    const state = apply([known("9")], first);
    const second = mergeGroupObservation(state, obs, T2);
    expect(second.map((m) => m.userId).sort()).toEqual(["1", "3"]);
    for (const m of second) expect({ ...m, lastSeenAt: T1 }).toEqual(byUser(first).get(m.userId));
  });
});

describe("mergeGroupObservation: inputs", () => {
  it("does not mutate the previous items", () => {
    const prev = [
      known("1", { active: false, exitSeenAt: T0, previousStints: [{ joinedOn: null, exitSeenAt: T0 }] }),
    ];
    const snapshot = structuredClone(prev);
    const out = mergeGroupObservation(prev, { groupId: G, users: [user("1", true)], members: [] }, T1);
    expect(prev).toEqual(snapshot);
    expect(out[0]?.previousStints).toHaveLength(2);
    expect(out[0]?.previousStints).not.toBe(prev[0]?.previousStints);
  });

  it("rejects memberships of another group with a stable code", () => {
    const wrong = { ...known("1"), groupId: "700002" };
    expect(() => mergeGroupObservation([wrong], { groupId: G, users: [], members: [] }, T1)).toThrow(
      expect.objectContaining({ code: "MEMBERSHIP_GROUP_MISMATCH" }),
    );
    expect(() => mergeGroupObservation([wrong], { groupId: G, users: [], members: [] }, T1)).toThrow(
      MembershipMergeError,
    );
  });

  it("ids are kept as strings, leading zeros included", () => {
    const [m] = mergeGroupObservation([], { groupId: "0042", users: [user("007", true)], members: [] }, T1);
    expect(m).toMatchObject({ groupId: "0042", userId: "007" });
  });
});
