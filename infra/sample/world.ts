/**
 * The sample's world: users, groups and the membership two syncs report (initial, current), plus the
 * attribution cases (DESIGN.md "Attribution") the sample must contain.
 */
import { DAY_MS, dateId, daysInMonth, isoDate, monthStartMs } from "./dates.ts";
import { formatThousandths } from "./decimal.ts";
import type { SimGroup, SimMember, SimState } from "./membership-types.ts";
import type { Rng } from "./rng.ts";
import type { SampleCases } from "./types.ts";

export interface SampleUser {
  id: string;
  /** Registration date, YYYYMMDD. */
  registered: string;
  loyaltyId: string;
  slabName: string;
  slabNumber: number;
  /** Relative activity (rows per month). */
  activity: number;
  /** Has at least one membership (group transactions and group redemptions only come from these). */
  inSomeGroup: boolean;
}

export interface World {
  users: SampleUser[];
  /** Every group id, ascending numerically. */
  groupIds: string[];
  initial: SimState;
  current: SimState;
  cases: SampleCases;
  /** userId -> months (YYYY-MM) in which the user has no row at all. */
  silent: Map<string, Set<string>>;
  /** userId -> date ids (YYYYMMDD) on which the user must have an award. */
  forced: Map<string, string[]>;
}

interface Plan {
  groupIdx: number;
  userId: string;
  joinedOn: string;
  role: "PRIMARY" | "SECONDARY";
  defaultGroup: boolean;
  /** null = not listed by that sync. */
  initialActive: boolean | null;
  currentActive: boolean;
}

export const MIN_GROUPS = 16;
const SLABS = ["Silver", "Gold", "Platinum"] as const;
const NAMES = [
  "Northwind Fleet",
  "Müller & Söhne, Berlin",
  'The "Best" Fleet',
  "Zoë's Café Group",
  "Acme Logistics",
  "Blue Harbour Taxis",
  "Sunrise Family",
  "Green Valley Farms",
  "Metro Couriers",
  "Lakeside Club",
  "Orchid Household",
  "Red Rock Transport",
  "Silver Line Cabs",
  "Coastal Movers",
  "Pine Street Co-op",
  "Harbor View Group",
];

export function buildWorld(rng: Rng, opts: { months: string[]; now: Date; groups: number }): World {
  const { months, now } = opts;
  if (opts.groups < MIN_GROUPS) throw new Error(`groups must be at least ${MIN_GROUPS} to hold every case`);
  const first = months[0] as string;
  const last = months[months.length - 1] as string;
  const firstStart = monthStartMs(first);
  const day = (month: string, d: number): number =>
    monthStartMs(month) + (Math.min(d, daysInMonth(month)) - 1) * DAY_MS;

  const usedIds = new Set<string>();
  const users: SampleUser[] = [];
  const newUser = (opts2: { big?: boolean; inSomeGroup: boolean; registeredBefore: number }): SampleUser => {
    let id = "";
    do {
      const big = opts2.big ?? rng.chance(0.12);
      id = big ? `${rng.int(1, 8)}${rng.digits(19).slice(1)}` : rng.digits(rng.int(9, 10));
    } while (usedIds.has(id));
    usedIds.add(id);
    const slab = rng.int(0, 2);
    const user: SampleUser = {
      id,
      registered: dateId(opts2.registeredBefore - rng.int(0, 700) * DAY_MS),
      loyaltyId: `9${rng.digits(9)}`,
      slabName: SLABS[slab] as string,
      slabNumber: slab + 1,
      activity: rng.pick([0.4, 0.7, 1, 1, 1, 1.3, 1.8]),
      inSomeGroup: opts2.inSomeGroup,
    };
    users.push(user);
    return user;
  };

  // Group ids: "9" and "10" (string order and numeric order disagree), then assorted lengths, and one
  // beyond 2^53 (17 digits).
  const gidSet = new Set<string>(["9", "10"]);
  while (gidSet.size < opts.groups - 1) gidSet.add(rng.digits(rng.int(2, 10)));
  gidSet.add(rng.digits(17));
  const groupIds = [...gidSet].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));

  const createdOn = groupIds.map(() => firstStart - rng.int(400, 900) * DAY_MS);
  const oldJoin = (g: number): string => isoDate((createdOn[g] as number) + rng.int(0, 380) * DAY_MS);
  const plans: Plan[] = [];
  const plan = (p: Partial<Plan> & { groupIdx: number; userId: string }): void => {
    plans.push({
      joinedOn: oldJoin(p.groupIdx),
      role: "SECONDARY",
      defaultGroup: false,
      initialActive: true,
      currentActive: true,
      ...p,
    });
  };
  const regBefore = (joined: string): number => Date.parse(`${joined}T00:00:00Z`);
  const caseUser = (big = false): SampleUser =>
    newUser({ big, inSomeGroup: true, registeredBefore: firstStart - 30 * DAY_MS });

  const forced = new Map<string, string[]>();
  const force = (u: SampleUser, ...dates: number[]): void => {
    forced.set(u.id, [...(forced.get(u.id) ?? []), ...dates.map(dateId)]);
  };
  const everyMonth = (u: SampleUser): void => {
    for (const m of months) force(u, day(m, 5), day(m, 25));
  };

  const gid = (i: number): string => groupIds[i] as string;
  const ROLE = {
    noDefaultA: 0,
    noDefaultB: 1,
    defaultOther: 2,
    defaultWins: 3,
    defaultLaterOld: 4,
    defaultLaterNew: 5,
    midJoin: 6,
    joinedLastMonth: 7,
    fseOther: 8,
    fseOnly: 9,
    exitSecond: 10,
    newSecond: 11,
    inactive: 12,
    deleted: 13,
    quiet: 14,
  } as const;

  const uNoDefault = caseUser(true);
  plan({ groupIdx: ROLE.noDefaultA, userId: uNoDefault.id });
  plan({ groupIdx: ROLE.noDefaultB, userId: uNoDefault.id });
  everyMonth(uNoDefault);

  const uDefault = caseUser();
  plan({ groupIdx: ROLE.defaultOther, userId: uDefault.id });
  plan({ groupIdx: ROLE.defaultWins, userId: uDefault.id, defaultGroup: true });
  everyMonth(uDefault);

  const laterJoin = day(first, 12);
  const uDefaultLater = caseUser();
  plan({ groupIdx: ROLE.defaultLaterOld, userId: uDefaultLater.id });
  plan({
    groupIdx: ROLE.defaultLaterNew,
    userId: uDefaultLater.id,
    defaultGroup: true,
    joinedOn: isoDate(laterJoin),
  });
  everyMonth(uDefaultLater);
  force(uDefaultLater, laterJoin - DAY_MS, laterJoin);

  const midJoin = day(first, 15);
  const uMid = caseUser();
  plan({ groupIdx: ROLE.midJoin, userId: uMid.id, joinedOn: isoDate(midJoin) });
  everyMonth(uMid);
  force(uMid, midJoin - DAY_MS, midJoin);

  const lastJoin = months.length > 1 ? day(last, 10) : day(last, 20);
  const uLast = caseUser();
  plan({ groupIdx: ROLE.joinedLastMonth, userId: uLast.id, joinedOn: isoDate(lastJoin) });
  everyMonth(uLast);
  force(uLast, lastJoin - DAY_MS, lastJoin);

  const uFseOther = caseUser();
  plan({ groupIdx: ROLE.noDefaultA, userId: uFseOther.id, initialActive: false, currentActive: false });
  plan({ groupIdx: ROLE.fseOther, userId: uFseOther.id });
  everyMonth(uFseOther);

  const uFseOnly = caseUser();
  plan({ groupIdx: ROLE.fseOnly, userId: uFseOnly.id, initialActive: false, currentActive: false });
  everyMonth(uFseOnly);

  const uExit = caseUser();
  plan({ groupIdx: ROLE.exitSecond, userId: uExit.id, currentActive: false });
  everyMonth(uExit);

  const uNew = caseUser();
  plan({ groupIdx: ROLE.newSecond, userId: uNew.id, joinedOn: isoDate(now.getTime()), initialActive: null });
  everyMonth(uNew);

  // INACTIVE group: its primary left before our first sync (so it is first seen exited).
  const uInactivePrimary = caseUser();
  plan({
    groupIdx: ROLE.inactive,
    userId: uInactivePrimary.id,
    role: "PRIMARY",
    initialActive: false,
    currentActive: false,
  });
  everyMonth(uInactivePrimary);

  // DELETED group: every member already exited at the first sync.
  const deletedMembers: SampleUser[] = [];
  for (let i = rng.int(2, 3); i > 0; i--) {
    const u = caseUser();
    deletedMembers.push(u);
    plan({
      groupIdx: ROLE.deleted,
      userId: u.id,
      role: deletedMembers.length === 1 ? "PRIMARY" : "SECONDARY",
      initialActive: false,
      currentActive: false,
    });
  }

  // Fill every group with ordinary members (2-8 in all); the first ordinary one is the primary unless
  // the group already has one.
  const quietUsers: SampleUser[] = [];
  for (let g = 0; g < groupIds.length; g++) {
    if (g === ROLE.deleted) continue;
    const existing = plans.filter((p) => p.groupIdx === g);
    const size = Math.max(rng.int(2, 8), existing.length + 1);
    const hasPrimary = existing.some((p) => p.role === "PRIMARY");
    for (let i = existing.length; i < size; i++) {
      const joinedOn = oldJoin(g);
      const u = newUser({ inSomeGroup: true, registeredBefore: regBefore(joinedOn) });
      const primary = !hasPrimary && i === existing.length;
      plan({ groupIdx: g, userId: u.id, joinedOn, role: primary ? "PRIMARY" : "SECONDARY" });
      if (g === ROLE.quiet) quietUsers.push(u);
    }
  }

  const noGroup: SampleUser[] = [];
  for (let i = 0; i < 15; i++) noGroup.push(newUser({ inSomeGroup: false, registeredBefore: firstStart }));
  const steady = noGroup[0];
  if (steady) steady.activity = 1;

  // Silent months: the quiet group has no activity in the last month; a few others skip a month.
  const caseIds = new Set(plans.filter((p) => p.groupIdx <= ROLE.quiet).map((p) => p.userId));
  const silent = new Map<string, Set<string>>();
  for (const u of quietUsers) silent.set(u.id, new Set([last]));
  for (const u of users) {
    if (caseIds.has(u.id) || silent.has(u.id) || u === steady) continue;
    for (const m of months) if (rng.chance(0.06)) silent.set(u.id, new Set([...(silent.get(u.id) ?? []), m]));
  }

  const statusOf = (g: number): SimGroup["groupStatus"] =>
    g === ROLE.inactive ? "INACTIVE" : g === ROLE.deleted ? "DELETED" : "ACTIVE";
  const groupsAt = (which: "initial" | "current"): SimGroup[] =>
    groupIds.map((id, g) => {
      const members: SimMember[] = [];
      for (const p of plans) {
        if (p.groupIdx !== g) continue;
        const active = which === "initial" ? p.initialActive : p.currentActive;
        if (active === null) continue;
        members.push({
          userId: p.userId,
          joinedOn: p.joinedOn,
          role: p.role,
          permissions:
            p.role === "PRIMARY" ? ["REDEEM", "TRANSACT", "MANAGE_MEMBERS"] : ["REDEEM", "TRANSACT"],
          primaryMember: p.role === "PRIMARY",
          defaultGroup: p.defaultGroup,
          active,
          pointsContributed: "0",
        });
      }
      return {
        id,
        externalId: null,
        groupName: "",
        groupStatus: statusOf(g),
        maxGroupSize: 10,
        createdOn: new Date(createdOn[g] as number).toISOString().replace("Z", "+00:00"),
        lifeTimePurchases: "0",
        extendedFields: {},
        programs: [],
        members,
      };
    });

  const initial: SimState = { groups: groupsAt("initial") };
  const current: SimState = { groups: groupsAt("current") };
  // Group-level values: the same in both syncs except the wallet, which moves between syncs.
  initial.groups.forEach((gi, g) => {
    const gc = current.groups[g] as SimGroup;
    const ext = rng.chance(0.25) ? null : rng.chance(0.5) ? `EXT-${rng.digits(6)}` : `fleet-${gi.id}`;
    const name = g < NAMES.length ? (NAMES[g] as string) : `Group ${gi.id}`;
    const purchases = formatThousandths(BigInt(rng.int(0, 90_000_000)) * 10n);
    const programs = (rng.chance(0.2) ? [0, 1] : [0]).map((p) => {
      const slab = g === ROLE.deleted ? 0 : rng.int(0, 2);
      const wallet =
        g === ROLE.deleted ? 0n : BigInt(rng.int(0, 5_000_000)) * BigInt(rng.pick([1, 10, 100, 1000]));
      return {
        programId: p === 0 ? "1771" : "1772",
        programTitle: p === 0 ? "Group Loyalty" : "Fleet Rewards",
        loyaltyPoints: formatThousandths(wallet),
        lifetimePoints: formatThousandths(wallet * 3n),
        redeemed: formatThousandths(wallet),
        expired: formatThousandths(wallet / 10n),
        currentSlab: SLABS[slab] as string,
        slabSNo: slab + 1,
      };
    });
    for (const [grp, isCurrent] of [
      [gi, false],
      [gc, true],
    ] as const) {
      grp.externalId = ext;
      grp.groupName = name;
      grp.lifeTimePurchases = purchases;
      grp.extendedFields = g % 3 === 0 ? { region: rng.pick(["north", "south", "east", "west"]) } : {};
      grp.programs = programs.map((p) => ({ ...p }));
      for (const m of grp.members) m.pointsContributed = formatThousandths(BigInt(rng.int(0, 900_000)) * 10n);
      if (isCurrent && g !== ROLE.deleted && rng.chance(0.5)) {
        const first0 = grp.programs[0];
        if (first0) first0.loyaltyPoints = formatThousandths(BigInt(rng.int(0, 5_000_000)) * 125n);
      }
    }
  });
  // Contributions should not differ between syncs for the same member.
  initial.groups.forEach((gi, g) => {
    const gc = current.groups[g] as SimGroup;
    for (const m of gc.members) {
      const before = gi.members.find((x) => x.userId === m.userId);
      if (before) m.pointsContributed = before.pointsContributed;
    }
  });

  const ids = (...us: SampleUser[]): string[] => us.map((u) => u.id);
  const d = (ms: number): string => isoDate(ms);
  const cases: SampleCases = {
    noDefaultSmallestNumericId: {
      description: `member in groups ${gid(0)} and ${gid(1)}, defaultGroup on neither (19-digit user id)`,
      userIds: ids(uNoDefault),
      groupIds: [gid(0), gid(1)],
      expect: `every row goes to ${gid(0)} (numerically smallest; string order would pick ${gid(1)})`,
    },
    defaultGroupWins: {
      description: `member in groups ${gid(2)} and ${gid(3)}, defaultGroup on ${gid(3)}`,
      userIds: ids(uDefault),
      groupIds: [gid(2), gid(3)],
      expect: `every row goes to ${gid(3)}`,
    },
    defaultGroupJoinedLater: {
      description: `member of ${gid(4)} since long ago, joined default group ${gid(5)} on ${d(laterJoin)}`,
      userIds: ids(uDefaultLater),
      groupIds: [gid(4), gid(5)],
      expect: `rows before ${d(laterJoin)} go to ${gid(4)}, rows on or after it to ${gid(5)} (default wins among qualifying groups)`,
    },
    joinedMidPeriod: {
      description: `member joined ${gid(6)} on ${d(midJoin)} and has rows before and on that date`,
      userIds: ids(uMid),
      groupIds: [gid(6)],
      expect: `rows before ${d(midJoin)} are unattributed; rows from ${d(midJoin)} on go to ${gid(6)}`,
    },
    rowsBeforeJoinedOn: {
      description: `member joined ${gid(7)} on ${d(lastJoin)}, with rows in every month before that`,
      userIds: ids(uLast, uMid),
      groupIds: [gid(7), gid(6)],
      expect: `rows before joinedOn unattributed; not in members_total of ${gid(7)} for ${first}`,
    },
    firstSeenExitedWithOtherGroup: {
      description: `member listed active:false in ${gid(0)} at the first sync, active in ${gid(8)}`,
      userIds: ids(uFseOther),
      groupIds: [gid(0), gid(8)],
      expect: `never attributed to ${gid(0)}; every row goes to ${gid(8)}`,
    },
    firstSeenExited: {
      description: `member listed active:false in ${gid(9)} at the first sync, in no other group; also the primary of INACTIVE group ${gid(ROLE.inactive)} and the members of DELETED group ${gid(ROLE.deleted)}`,
      userIds: ids(uFseOnly, uInactivePrimary, ...deletedMembers),
      groupIds: [gid(9), gid(ROLE.inactive), gid(ROLE.deleted)],
      expect: "never attributed: every row unattributed",
    },
    exitedAfterFirstSync: {
      description: `member active in ${gid(10)} at the first sync and active:false at the second (both after all months)`,
      userIds: ids(uExit),
      groupIds: [gid(10)],
      expect: `attributed to ${gid(10)} for every date >= joinedOn, counted in members_total`,
    },
    joinedAfterPeriods: {
      description: `member first listed by the second sync in ${gid(11)}, joinedOn ${d(now.getTime())}`,
      userIds: ids(uNew),
      groupIds: [gid(11)],
      expect: "rows in the sample months are unattributed",
    },
    inactiveGroup: {
      description: `group ${gid(ROLE.inactive)} is INACTIVE (its primary left); its other members are active`,
      userIds: [],
      groupIds: [gid(ROLE.inactive)],
      expect: "reported like any group, status INACTIVE, figures of its active members",
    },
    deletedGroup: {
      description: `group ${gid(ROLE.deleted)} is DELETED; all its members were already exited at the first sync`,
      userIds: ids(...deletedMembers),
      groupIds: [gid(ROLE.deleted)],
      expect: "reported with status DELETED and 0s",
    },
    noActivityInPeriod: {
      description: `no member of group ${gid(ROLE.quiet)} has any row in ${last}`,
      userIds: ids(...quietUsers),
      groupIds: [gid(ROLE.quiet)],
      expect: `row for ${last} with 0 figures, members_total > 0`,
    },
    noGroup: {
      description: "users in no group at all",
      userIds: ids(...noGroup),
      groupIds: [],
      expect: "their rows go to the unattributed report",
    },
    groupIdBeyond2to53: {
      description: "a group id with 17 digits (> 2^53)",
      userIds: [],
      groupIds: [groupIds[groupIds.length - 1] as string],
      expect: "kept exactly; sorted last",
    },
    bigUserIds: {
      description: "19-digit user ids (> 2^53)",
      userIds: users.filter((u) => u.id.length === 19).map((u) => u.id),
      groupIds: [],
      expect: "kept exactly, joined with membership exactly",
    },
  };

  return { users, groupIds, initial, current, cases, silent, forced };
}
