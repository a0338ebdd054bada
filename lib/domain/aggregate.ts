/**
 * The group report of one period (DESIGN.md "Report contract v1"), computed from the newest version of
 * each staged row, attributed to groups by membership history, summed exactly (integer thousandths).
 * Pure and additive: rows come in part by part (key-hash partitions, lib/aggregate-parts.ts), and the
 * aggregates of disjoint parts merge (merge, toState/fromState), so parts can run anywhere.
 */
import { type AttributionIndex, compareGroupIds as compareIds } from "./attribution.ts";
import { lastDayOf } from "./dates.ts";
import { formatThousandths, parseThousandths } from "./decimal.ts";
import type { GroupMeta, Membership } from "./membership.ts";

/** Which figures the delivered exports can supply at all (else the figure is empty, never 0). */
export interface Capabilities {
  points: boolean;
  eventName: boolean;
  redemptionSummary: boolean;
  members: boolean;
  rewards: boolean;
}

export const GROUP_SUMMARY_COLUMNS = [
  "period",
  "group_id",
  "group_external_id",
  "group_name",
  "group_status",
  "members_total",
  "members_active_in_period",
  "points_awarded",
  "group_transaction_points",
  "points_redeemed",
  "points_expired",
  "points_returned",
  "points_reversed",
  "group_wallet_redemptions",
  "group_wallet_points_redeemed",
  "member_redemptions",
  "member_points_redeemed",
  "members_points_balance",
  "members_lifetime_points",
  "members_lifetime_purchases",
  "group_wallet_balance",
  "group_tier",
  "group_reward_redemptions",
] as const;
export type GroupSummaryRow = Record<(typeof GROUP_SUMMARY_COLUMNS)[number], string>;

export const GROUP_MEMBERS_COLUMNS = [
  "period",
  "group_id",
  "user_id",
  "role",
  "tier",
  "points_awarded",
  "points_redeemed",
  "points_balance",
  "lifetime_purchases",
  /** yes: counted in the group's members_total and members_* figures (a member counts in one group only). */
  "in_members_total",
] as const;
export type GroupMembersRow = Record<(typeof GROUP_MEMBERS_COLUMNS)[number], string>;

export const UNATTRIBUTED_COLUMNS = [
  "period",
  "user_id",
  "rows",
  "points_awarded",
  "points_redeemed",
] as const;
export type UnattributedRow = Record<(typeof UNATTRIBUTED_COLUMNS)[number], string>;

/** Group-wallet redemptions of one day (all groups): for the HTML report's chart. */
export interface WalletDay {
  date: string;
  redemptions: number;
  points: string;
}

/** Members snapshot row (staged columns): user_id, loyalty_points, lifetime_points, lifetime_purchased, tier, version. */
export type MemberSnapshot = readonly string[];

const REVERSED = new Set([
  "redemption_reversal",
  "redemption_reverted",
  "expiry_reverted",
  "redeemed_by_transfer_reverted",
]);
const RETURNED = new Set(["return", "return_historical"]);
const MEMBER_REDEMPTION = new Set(["redemption", "redeemed"]);

/*
 * A row's kind: what of its text the sums need, as a small number (so an upsert can keep rows as
 * numbers, lib/domain/upsert.ts StagedRows). Points: the deduction category, plus GROUP_TXN.
 */
const DEDUCTION = 7;
const REDEEMED = 1;
const EXPIRED = 2;
const RETURNED_KIND = 3;
const REVERSED_KIND = 4;
const GROUP_TXN = 8;
const GROUP_REDEMPTION = 1;
const MEMBER_REDEMPTION_KIND = 2;
const GROUP_REWARD = 1;

function pointsKind(deductionType: string, eventName: string): number {
  const d =
    deductionType === "redeemed"
      ? REDEEMED
      : deductionType === "expired"
        ? EXPIRED
        : RETURNED.has(deductionType)
          ? RETURNED_KIND
          : REVERSED.has(deductionType)
            ? REVERSED_KIND
            : 0;
  return eventName === "grouptransactionadd" ? d | GROUP_TXN : d;
}

function redemptionKind(redemptionType: string): number {
  if (redemptionType === "group_redemption") return GROUP_REDEMPTION;
  return MEMBER_REDEMPTION.has(redemptionType) ? MEMBER_REDEMPTION_KIND : 0;
}

function rewardKind(groupFlag: string): number {
  return groupFlag === "1" ? GROUP_REWARD : 0;
}

/** The staged datasets the sums read (Members is a snapshot, read apart). */
export type SummedDataset = "points" | "points_redemption_summary" | "rewards";

/** What the sums need of one staged row: user, event date, two amounts (thousandths) and its kind. */
export interface RowFacts {
  user: string;
  date: string;
  a: number | bigint;
  b: number | bigint;
  kind: number;
}

/**
 * Reads the facts of a staged row of `dataset` (its STAGED_COLUMNS) into `out`, which it returns: the
 * one place that knows those columns. Points: allocated, deducted; Redemption Summary: points redeemed.
 */
export function readFacts(dataset: SummedDataset, r: readonly string[], out: RowFacts): RowFacts {
  out.user = r[1] ?? "";
  out.date = r[2] ?? "";
  if (dataset === "points") {
    out.a = thousandths(r[3]);
    out.b = thousandths(r[4]);
    out.kind = pointsKind(r[5] ?? "", r[6] ?? "");
  } else if (dataset === "points_redemption_summary") {
    out.a = thousandths(r[3]);
    out.b = 0;
    out.kind = redemptionKind(r[4] ?? "");
  } else {
    out.a = 0;
    out.b = 0;
    out.kind = rewardKind(r[3] ?? "");
  }
  return out;
}

const LIMIT = 2 ** 52;

/**
 * An exact sum of integer thousandths: a float accumulator that stays within 2^52 (so every addition of
 * a value within 2^52 is exact), spilled into a bigint when it would leave that range. As exact as a
 * bigint sum, without a bigint per row on the hot path.
 */
class Sum {
  private big = 0n;
  private n = 0;
  add(v: number | bigint): void {
    if (typeof v === "bigint") {
      this.big += v;
      return;
    }
    const n = this.n + v;
    if (n > LIMIT || n < -LIMIT) {
      this.big += BigInt(this.n) + BigInt(v);
      this.n = 0;
    } else this.n = n;
  }
  addSum(o: Sum): void {
    this.big += o.big;
    this.add(o.n);
  }
  value(): bigint {
    return this.big + BigInt(this.n);
  }
  static of(v: bigint): Sum {
    const s = new Sum();
    s.big = v;
    return s;
  }
}

/** A staged integer-thousandths cell: a number when it is within 2^52, else a bigint; "" is 0. */
function thousandths(s: string | undefined): number | bigint {
  if (s === undefined || s === "") return 0;
  const v = Number(s);
  return Number.isInteger(v) && v <= LIMIT && v >= -LIMIT ? v : BigInt(s);
}

const SUMS = [
  "awarded",
  "groupTxn",
  "redeemed",
  "expired",
  "returned",
  "reversed",
  "walletSum",
  "memberSum",
] as const;
const COUNTS = ["walletCount", "memberCount", "rewardCount"] as const;

class GroupAcc {
  readonly awarded = new Sum();
  readonly groupTxn = new Sum();
  readonly redeemed = new Sum();
  readonly expired = new Sum();
  readonly returned = new Sum();
  readonly reversed = new Sum();
  walletCount = 0;
  readonly walletSum = new Sum();
  memberCount = 0;
  readonly memberSum = new Sum();
  rewardCount = 0;
  /** per user with any Points or Redemption Summary row here (members_active_in_period): [awarded, redeemed] */
  readonly perUser = new Map<string, [Sum, Sum]>();
  private lastUser: string | undefined;
  private lastSums: [Sum, Sum] | undefined;
  user(u: string): [Sum, Sum] {
    if (u === this.lastUser && this.lastSums) return this.lastSums;
    let v = this.perUser.get(u);
    if (!v) {
      v = [new Sum(), new Sum()];
      this.perUser.set(u, v);
    }
    this.lastUser = u;
    this.lastSums = v;
    return v;
  }
  merge(o: GroupAcc): void {
    for (const k of SUMS) this[k].addSum(o[k]);
    for (const k of COUNTS) this[k] += o[k];
    for (const [u, [aw, red]] of o.perUser) {
      const pu = this.user(u);
      pu[0].addSum(aw);
      pu[1].addSum(red);
    }
  }
}

/**
 * A PeriodAggregator's state as JSON (bigints as decimal strings): what one part of a fanned-out
 * aggregation hands back. Additive: states of disjoint row sets merge into the state of their union.
 */
export interface PeriodState {
  period: string;
  groups: { id: string; sums: string[]; counts: number[]; users: [string, string, string][] }[];
  unattributed: [string, number, string, string][];
  walletDays: [string, number, string][];
}

interface Unattributed {
  rows: number;
  awarded: Sum;
  redeemed: Sum;
}

export class PeriodAggregator {
  private readonly groups = new Map<string, GroupAcc>();
  private readonly unattributed = new Map<string, Unattributed>();
  /** Group-wallet redemptions (attributed to a group) per event date: count and points. */
  private readonly walletDays = new Map<string, { count: number; points: Sum }>();

  constructor(
    readonly period: string,
    private readonly attribution: AttributionIndex,
  ) {}

  /** The last group looked up (rows come grouped by user, so mostly by group). */
  private last: { id: string; acc: GroupAcc } | undefined;

  private acc(groupId: string): GroupAcc {
    if (this.last?.id === groupId) return this.last.acc;
    let a = this.groups.get(groupId);
    if (!a) {
      a = new GroupAcc();
      this.groups.set(groupId, a);
    }
    this.last = { id: groupId, acc: a };
    return a;
  }

  private unattr(userId: string) {
    let u = this.unattributed.get(userId);
    if (!u) {
      u = { rows: 0, awarded: new Sum(), redeemed: new Sum() };
      this.unattributed.set(userId, u);
    }
    return u;
  }

  /** Adds another aggregator's rows (of the same period; disjoint rows, e.g. another key-hash part). */
  merge(o: PeriodAggregator): void {
    if (o.period !== this.period) throw new Error(`cannot merge period ${o.period} into ${this.period}`);
    for (const [id, acc] of o.groups) this.acc(id).merge(acc);
    for (const [u, x] of o.unattributed) {
      const t = this.unattr(u);
      t.rows += x.rows;
      t.awarded.addSum(x.awarded);
      t.redeemed.addSum(x.redeemed);
    }
    for (const [d, x] of o.walletDays) this.walletDay(d, x.count, x.points);
  }

  toState(): PeriodState {
    return {
      period: this.period,
      groups: [...this.groups].map(([id, a]) => ({
        id,
        sums: SUMS.map((k) => a[k].value().toString()),
        counts: COUNTS.map((k) => a[k]),
        users: [...a.perUser].map(([u, [aw, red]]) => [u, aw.value().toString(), red.value().toString()]),
      })),
      unattributed: [...this.unattributed].map(([u, x]) => [
        u,
        x.rows,
        x.awarded.value().toString(),
        x.redeemed.value().toString(),
      ]),
      walletDays: [...this.walletDays].map(([d, x]) => [d, x.count, x.points.value().toString()]),
    };
  }

  static fromState(state: PeriodState, attribution: AttributionIndex): PeriodAggregator {
    const agg = new PeriodAggregator(state.period, attribution);
    for (const g of state.groups) {
      const a = agg.acc(g.id);
      for (const [i, k] of SUMS.entries()) a[k].add(BigInt(g.sums[i] ?? "0"));
      for (const [i, k] of COUNTS.entries()) a[k] = g.counts[i] ?? 0;
      for (const [u, aw, red] of g.users) a.perUser.set(u, [Sum.of(BigInt(aw)), Sum.of(BigInt(red))]);
    }
    for (const [u, rows, aw, red] of state.unattributed)
      agg.unattributed.set(u, { rows, awarded: Sum.of(BigInt(aw)), redeemed: Sum.of(BigInt(red)) });
    for (const [d, count, pts] of state.walletDays) agg.walletDay(d, count, Sum.of(BigInt(pts)));
    return agg;
  }

  /** One staged row of `dataset` (STAGED_COLUMNS); rows of other periods are ignored. */
  addRow(dataset: SummedDataset, r: readonly string[]): void {
    const f = readFacts(dataset, r, { user: "", date: "", a: 0, b: 0, kind: 0 });
    if (f.date.slice(0, 7) === this.period) this.add(dataset, f.user, f.date, f.a, f.b, f.kind);
  }

  /** The facts of one row of `dataset` dated in this period (readFacts). */
  add(
    dataset: SummedDataset,
    userId: string,
    date: string,
    a: number | bigint,
    b: number | bigint,
    kind: number,
  ): void {
    if (dataset === "points") this.points(userId, date, a, b, kind);
    else if (dataset === "points_redemption_summary") this.redemption(userId, date, a, kind);
    else this.reward(userId, date, kind);
  }

  /** A Points row of this period by its facts (`kind` from pointsKind). */
  private points(
    userId: string,
    date: string,
    allocated: number | bigint,
    deducted: number | bigint,
    kind: number,
  ): void {
    const deduction = kind & DEDUCTION;
    const g = this.attribution.groupOf(userId, date);
    if (g === null) {
      const u = this.unattr(userId);
      u.rows++;
      u.awarded.add(allocated);
      if (deduction === REDEEMED) u.redeemed.add(deducted);
      return;
    }
    const a = this.acc(g);
    a.awarded.add(allocated);
    if (kind & GROUP_TXN) a.groupTxn.add(allocated);
    if (deduction === REDEEMED) a.redeemed.add(deducted);
    else if (deduction === EXPIRED) a.expired.add(deducted);
    else if (deduction === RETURNED_KIND) a.returned.add(deducted);
    else if (deduction === REVERSED_KIND) a.reversed.add(deducted);
    const pu = a.user(userId);
    pu[0].add(allocated);
    if (deduction === REDEEMED) pu[1].add(deducted);
  }

  private walletDay(date: string, count: number, points: Sum | number | bigint): void {
    let d = this.walletDays.get(date);
    if (!d) {
      d = { count: 0, points: new Sum() };
      this.walletDays.set(date, d);
    }
    d.count += count;
    if (points instanceof Sum) d.points.addSum(points);
    else d.points.add(points);
  }

  /** A Redemption Summary row of this period by its facts (`kind` from redemptionKind). */
  private redemption(userId: string, date: string, points: number | bigint, kind: number): void {
    const g = this.attribution.groupOf(userId, date);
    if (g === null) {
      this.unattr(userId).rows++;
      return;
    }
    const a = this.acc(g);
    a.user(userId);
    if (kind === GROUP_REDEMPTION) {
      a.walletCount++;
      a.walletSum.add(points);
      this.walletDay(date, 1, points);
    } else if (kind === MEMBER_REDEMPTION_KIND) {
      a.memberCount++;
      a.memberSum.add(points);
    }
  }

  /** A reward row of this period by its facts (`kind` from rewardKind). */
  private reward(userId: string, date: string, kind: number): void {
    if (kind !== GROUP_REWARD) return;
    const g = this.attribution.groupOf(userId, date);
    if (g !== null) this.acc(g).rewardCount++;
  }

  /**
   * The report rows. `today` (YYYY-MM-DD in the report time zone) decides the members_total date of the
   * current month; `memberships` gives roles; `members` is the newest Members snapshot per user.
   */
  finish(input: {
    groups: readonly GroupMeta[];
    memberships: readonly Membership[];
    members: ReadonlyMap<string, MemberSnapshot>;
    capabilities: Capabilities;
    today: string;
  }): {
    groupSummary: GroupSummaryRow[];
    groupMembers: GroupMembersRow[];
    unattributed: UnattributedRow[];
    walletByDay: WalletDay[];
  } {
    const { capabilities: cap } = input;
    const p = this.period;
    const last = lastDayOf(p);
    const onDate = input.today.slice(0, 7) === p && input.today < last ? input.today : last;

    // members_total: each user counts in the one group it is attributed to on `onDate`; group_members
    // lists every user attributed to the group on some date of the period up to `onDate`.
    const totals = new Map<string, Set<string>>();
    const during = new Map<string, Set<string>>();
    const roles = new Map<string, string | null>();
    const add = (map: Map<string, Set<string>>, g: string, u: string) => {
      let set = map.get(g);
      if (!set) {
        set = new Set();
        map.set(g, set);
      }
      set.add(u);
    };
    for (const m of input.memberships) {
      roles.set(`${m.groupId}|${m.userId}`, m.role);
      if (this.attribution.groupOf(m.userId, onDate) === m.groupId) add(totals, m.groupId, m.userId);
      if (this.attribution.groupsDuring(m.userId, `${p}-01`, onDate).includes(m.groupId))
        add(during, m.groupId, m.userId);
    }

    const dec = (on: boolean, v: bigint | Sum) =>
      on ? formatThousandths(v instanceof Sum ? v.value() : v) : "";
    const num = (on: boolean, v: number) => (on ? String(v) : "");
    /** A member's snapshot figure (staged integer thousandths); 0 when unknown. */
    const snap = (u: string, i: 1 | 2 | 3) => thousandths(input.members.get(u)?.[i]);

    const groupSummary: GroupSummaryRow[] = [];
    const groupMembers: GroupMembersRow[] = [];
    const sorted = [...input.groups].sort((a, b) => compareIds(a.groupId, b.groupId));
    for (const g of sorted) {
      const a = this.groups.get(g.groupId) ?? new GroupAcc();
      const members = totals.get(g.groupId) ?? new Set<string>();
      const balance = new Sum();
      const lifetime = new Sum();
      const purchases = new Sum();
      for (const u of members) {
        balance.add(snap(u, 1));
        lifetime.add(snap(u, 2));
        purchases.add(snap(u, 3));
      }
      let wallet: bigint | null = null;
      for (const prog of g.programs) {
        const t = parseThousandths(prog.loyaltyPoints);
        if (typeof t === "number") wallet = (wallet ?? 0n) + BigInt(t);
      }
      groupSummary.push({
        period: p,
        group_id: g.groupId,
        group_external_id: g.externalId ?? "",
        group_name: g.name,
        group_status: g.status,
        members_total: String(members.size),
        members_active_in_period: String(a.perUser.size),
        points_awarded: dec(cap.points, a.awarded),
        group_transaction_points: dec(cap.points && cap.eventName, a.groupTxn),
        points_redeemed: dec(cap.points, a.redeemed),
        points_expired: dec(cap.points, a.expired),
        points_returned: dec(cap.points, a.returned),
        points_reversed: dec(cap.points, a.reversed),
        group_wallet_redemptions: num(cap.redemptionSummary, a.walletCount),
        group_wallet_points_redeemed: dec(cap.redemptionSummary, a.walletSum),
        member_redemptions: num(cap.redemptionSummary, a.memberCount),
        member_points_redeemed: dec(cap.redemptionSummary, a.memberSum),
        members_points_balance: dec(cap.members, balance),
        members_lifetime_points: dec(cap.members, lifetime),
        members_lifetime_purchases: dec(cap.members, purchases),
        group_wallet_balance: wallet === null ? "" : formatThousandths(wallet),
        group_tier: g.programs[0]?.currentSlab ?? "",
        group_reward_redemptions: num(cap.rewards, a.rewardCount),
      });

      const users = new Set<string>([...(during.get(g.groupId) ?? []), ...a.perUser.keys()]);
      for (const u of [...users].sort(compareIds)) {
        const pu = a.perUser.get(u);
        const s = input.members.get(u);
        groupMembers.push({
          period: p,
          group_id: g.groupId,
          user_id: u,
          role: roles.get(`${g.groupId}|${u}`) ?? "",
          tier: s?.[4] ?? "",
          points_awarded: dec(cap.points, pu?.[0] ?? 0n),
          points_redeemed: dec(cap.points, pu?.[1] ?? 0n),
          points_balance: s && s[1] !== "" ? formatThousandths(thousandths(s[1])) : "",
          lifetime_purchases: s && s[3] !== "" ? formatThousandths(thousandths(s[3])) : "",
          in_members_total: members.has(u) ? "yes" : "no",
        });
      }
    }

    const unattributed: UnattributedRow[] = [...this.unattributed.entries()]
      .sort(([a], [b]) => compareIds(a, b))
      .map(([userId, u]) => ({
        period: p,
        user_id: userId,
        rows: String(u.rows),
        points_awarded: dec(cap.points, u.awarded),
        points_redeemed: dec(cap.points, u.redeemed),
      }));
    const walletByDay: WalletDay[] = [...this.walletDays.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([date, d]) => ({ date, redemptions: d.count, points: formatThousandths(d.points.value()) }));
    return { groupSummary, groupMembers, unattributed, walletByDay };
  }
}
