/**
 * The oracle: the report figures DESIGN.md's contract defines, computed from the generated rows held in
 * memory (never from the files) and the membership each sync saw. Deliberately plain: newest version
 * per key over all months first, then attribute each row on its own event date and add up exact
 * thousandths; so a re-sent row whose event date moved to another month counts in its new month only.
 * group_members lists, per period and group, every member attributed to the group on some day of the
 * period (through its members_total date) or with an attributed row in it; in_members_total = attributed
 * on the members_total date; role from the syncs, tier and balances from the newest Members row.
 */
import { formatThousandths as dec } from "./decimal.ts";
import type { SimState } from "./membership-types.ts";
import type { MemberRec, PointsRec, SummaryRec, Truth, TruthInput, TruthRow } from "./types.ts";

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

/** group_members.csv: the contract's columns, then in_members_total (README "Reports"). */
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
  "in_members_total",
] as const;

const RETURNED = new Set(["return", "return_historical"]);
const REVERSED = new Set([
  "redemption_reversal",
  "redemption_reverted",
  "expiry_reverted",
  "redeemed_by_transfer_reverted",
]);

export function compareIds(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Keeps the newest version per key; `newer(a, b)` > 0 when a is newer than b. */
function newest<T>(rows: readonly T[], key: (r: T) => string, newer: (a: T, b: T) => number): T[] {
  const kept = new Map<string, T>();
  for (const r of rows) {
    const k = key(r);
    const old = kept.get(k);
    if (old === undefined || newer(r, old) >= 0) kept.set(k, r);
  }
  return [...kept.values()];
}

// ---------------------------------------------------------------- attribution

/** One (group, member) pair as our syncs observed it. */
export interface Observed {
  groupId: string;
  userId: string;
  /** YYYYMMDD */
  joinedOn: string | null;
  defaultGroup: boolean;
  active: boolean;
  seenActive: boolean;
  /** YYYYMMDD of the sync that first saw it exited after having seen it active. */
  exitSeen: string | null;
  firstSeenExited: boolean;
}

export function observe(syncs: readonly { date: string; state: SimState }[]): Map<string, Observed[]> {
  const pairs = new Map<string, Observed>();
  for (const sync of syncs) {
    const syncDate = sync.date.replaceAll("-", "");
    for (const g of sync.state.groups) {
      for (const m of g.members) {
        const key = `${g.id}|${m.userId}`;
        const o = pairs.get(key);
        const joinedOn = m.joinedOn ? m.joinedOn.replaceAll("-", "") : null;
        if (!o) {
          pairs.set(key, {
            groupId: g.id,
            userId: m.userId,
            joinedOn,
            defaultGroup: m.defaultGroup,
            active: m.active,
            seenActive: m.active,
            exitSeen: null,
            firstSeenExited: !m.active,
          });
          continue;
        }
        if (!m.active && o.active && o.exitSeen === null) o.exitSeen = syncDate;
        if (m.active) {
          o.seenActive = true;
          o.exitSeen = null;
        }
        o.active = m.active;
        o.joinedOn = joinedOn;
        o.defaultGroup = m.defaultGroup;
      }
    }
  }
  const byUser = new Map<string, Observed[]>();
  for (const o of pairs.values()) byUser.set(o.userId, [...(byUser.get(o.userId) ?? []), o]);
  return byUser;
}

/** DESIGN.md "Attribution": the group of `userId` on date `d` (YYYYMMDD), or null. */
export function attribute(byUser: Map<string, Observed[]>, userId: string, d: string): string | null {
  const qualifying = (byUser.get(userId) ?? []).filter(
    (o) =>
      !o.firstSeenExited &&
      (o.joinedOn === null || o.joinedOn <= d) &&
      (o.active || (o.exitSeen !== null && o.exitSeen > d)),
  );
  const defaults = qualifying.filter((o) => o.defaultGroup);
  const pool = defaults.length > 0 ? defaults : qualifying;
  const best = pool.map((o) => o.groupId).sort(compareIds)[0];
  return best ?? null;
}

// ---------------------------------------------------------------- figures

interface Figures {
  active: Set<string>;
  awarded: bigint;
  groupTransaction: bigint;
  redeemed: bigint;
  expired: bigint;
  returned: bigint;
  reversed: bigint;
  walletCount: number;
  walletPoints: bigint;
  memberCount: number;
  memberPoints: bigint;
}

const emptyFigures = (): Figures => ({
  active: new Set(),
  awarded: 0n,
  groupTransaction: 0n,
  redeemed: 0n,
  expired: 0n,
  returned: 0n,
  reversed: 0n,
  walletCount: 0,
  walletPoints: 0n,
  memberCount: 0,
  memberPoints: 0n,
});

function addPoints(f: Figures, r: PointsRec): void {
  f.active.add(r.userId);
  f.awarded += r.allocated;
  if (r.eventName === "GroupTransactionAdd") f.groupTransaction += r.allocated;
  const t = r.deductionType.toLowerCase();
  if (t === "redeemed") f.redeemed += r.deducted;
  if (t === "expired") f.expired += r.deducted;
  if (RETURNED.has(t)) f.returned += r.deducted;
  if (REVERSED.has(t)) f.reversed += r.deducted;
}

function addSummary(f: Figures, r: SummaryRec): void {
  f.active.add(r.userId);
  const t = r.redemptionType.toLowerCase();
  if (t === "group_redemption") {
    f.walletCount++;
    f.walletPoints += r.pointsRedeemed;
  }
  if (t === "redemption" || t === "redeemed") {
    f.memberCount++;
    f.memberPoints += r.pointsRedeemed;
  }
}

const periodOf = (dateId: string): string => `${dateId.slice(0, 4)}-${dateId.slice(4, 6)}`;

/** Every day (YYYYMMDD) of the period from its first day through `until` (YYYYMMDD). */
function daysThrough(period: string, until: string): string[] {
  const out: string[] = [];
  const t = new Date(Date.UTC(Number(period.slice(0, 4)), Number(period.slice(5, 7)) - 1, 1));
  for (;;) {
    const d = t.toISOString().slice(0, 10).replaceAll("-", "");
    if (d > until || periodOf(d) !== period) return out;
    out.push(d);
    t.setUTCDate(t.getUTCDate() + 1);
  }
}

/** The period's last day (YYYYMMDD), or today when the period is still running. */
function lastDay(period: string, now: Date): string {
  const y = Number(period.slice(0, 4));
  const m = Number(period.slice(5, 7));
  const end = new Date(Date.UTC(y, m, 0));
  const day = end.getTime() < now.getTime() ? end : now;
  return day.toISOString().slice(0, 10).replaceAll("-", "");
}

export function computeTruth(input: TruthInput): Truth {
  // Versions are compared across every month: the period of a row is that of its newest version's date.
  const points = newest(
    input.points,
    (r) => r.eventId,
    (a, b) => (a.updated < b.updated ? -1 : a.updated > b.updated ? 1 : a.delivery - b.delivery),
  );
  const summaries = newest(
    input.summaries,
    (r) => r.eventId,
    (a, b) => a.autoUpdateTime - b.autoUpdateTime || a.delivery - b.delivery,
  );
  const members = new Map<string, MemberRec>(
    newest(
      input.members,
      (r) => r.userId,
      (a, b) => a.autoUpdateTime - b.autoUpdateTime || a.delivery - b.delivery,
    ).map((m) => [m.userId, m]),
  );
  const byUser = observe(input.syncs);
  const latest = input.syncs[input.syncs.length - 1];
  if (!latest) throw new Error("no sync");
  const groups = [...latest.state.groups].sort((a, b) => compareIds(a.id, b.id));

  const periods = [...new Set([...points, ...summaries].map((r) => periodOf(r.date)))].sort();
  const figures = new Map<string, Figures>();
  /** `${period}|${groupId}|${userId}` -> the member's attributed figures (any row lists the member). */
  const perMember = new Map<string, { awarded: bigint; redeemed: bigint }>();
  const memberFor = (period: string, groupId: string, userId: string) => {
    const key = `${period}|${groupId}|${userId}`;
    let m = perMember.get(key);
    if (!m) {
      m = { awarded: 0n, redeemed: 0n };
      perMember.set(key, m);
    }
    return m;
  };
  const unattributed = new Map<string, { rows: number; awarded: bigint; redeemed: bigint }>();
  const unattributedFor = (period: string, userId: string) => {
    const key = `${period}|${userId}`;
    let u = unattributed.get(key);
    if (!u) {
      u = { rows: 0, awarded: 0n, redeemed: 0n };
      unattributed.set(key, u);
    }
    return u;
  };
  const figuresFor = (period: string, groupId: string): Figures => {
    const key = `${period}|${groupId}`;
    let f = figures.get(key);
    if (!f) {
      f = emptyFigures();
      figures.set(key, f);
    }
    return f;
  };

  for (const r of points) {
    const g = attribute(byUser, r.userId, r.date);
    if (g !== null) {
      addPoints(figuresFor(periodOf(r.date), g), r);
      const m = memberFor(periodOf(r.date), g, r.userId);
      m.awarded += r.allocated;
      if (r.deductionType.toLowerCase() === "redeemed") m.redeemed += r.deducted;
      continue;
    }
    const u = unattributedFor(periodOf(r.date), r.userId);
    const probe = emptyFigures();
    addPoints(probe, r);
    u.rows++;
    u.awarded += probe.awarded;
    u.redeemed += probe.redeemed;
  }
  for (const r of summaries) {
    const g = attribute(byUser, r.userId, r.date);
    if (g !== null) {
      addSummary(figuresFor(periodOf(r.date), g), r);
      memberFor(periodOf(r.date), g, r.userId);
    } else unattributedFor(periodOf(r.date), r.userId).rows++;
  }

  // Roles as the last sync that listed the pair saw them.
  const roles = new Map<string, string>();
  for (const sync of input.syncs)
    for (const g of sync.state.groups) for (const m of g.members) roles.set(`${g.id}|${m.userId}`, m.role);

  const allUsers = [...byUser.keys()];
  const groupSummary: TruthRow[] = [];
  const groupMembers: TruthRow[] = [];
  for (const period of periods) {
    const day = lastDay(period, input.now);
    // Who was in which group at some day of the period (through `day`): a member who moved mid-month
    // is listed in both groups, counted (in_members_total) only in the group of `day`.
    const listed = new Map<string, Set<string>>();
    for (const u of allUsers) {
      for (const d of daysThrough(period, day)) {
        const g = attribute(byUser, u, d);
        if (g !== null) listed.set(g, (listed.get(g) ?? new Set<string>()).add(u));
      }
    }
    for (const key of perMember.keys()) {
      const [p = "", g = "", u = ""] = key.split("|");
      if (p === period) listed.set(g, (listed.get(g) ?? new Set<string>()).add(u));
    }
    for (const g of groups) {
      const f = figures.get(`${period}|${g.id}`) ?? emptyFigures();
      const total = allUsers.filter((u) => attribute(byUser, u, day) === g.id);
      for (const u of [...(listed.get(g.id) ?? [])].sort(compareIds)) {
        const fig = perMember.get(`${period}|${g.id}|${u}`) ?? { awarded: 0n, redeemed: 0n };
        const m = members.get(u);
        groupMembers.push({
          period,
          group_id: g.id,
          user_id: u,
          role: roles.get(`${g.id}|${u}`) ?? "",
          tier: m?.tier ?? "",
          points_awarded: dec(fig.awarded),
          points_redeemed: dec(fig.redeemed),
          points_balance: m ? dec(m.loyaltyPoints) : "",
          lifetime_purchases: m ? dec(m.lifetimePurchased) : "",
          in_members_total: total.includes(u) ? "yes" : "no",
        });
      }
      let balance = 0n;
      let lifetime = 0n;
      let purchases = 0n;
      for (const u of total) {
        const m = members.get(u);
        if (!m) continue;
        balance += m.loyaltyPoints;
        lifetime += m.lifetimePoints;
        purchases += m.lifetimePurchased;
      }
      let wallet = 0n;
      for (const p of g.programs) wallet += thousandths(p.loyaltyPoints);
      const row: TruthRow = {
        period,
        group_id: g.id,
        group_external_id: g.externalId ?? "",
        group_name: g.groupName,
        group_status: g.groupStatus,
        members_total: String(total.length),
        members_active_in_period: String(f.active.size),
        points_awarded: dec(f.awarded),
        group_transaction_points: dec(f.groupTransaction),
        points_redeemed: dec(f.redeemed),
        points_expired: dec(f.expired),
        points_returned: dec(f.returned),
        points_reversed: dec(f.reversed),
        group_wallet_redemptions: String(f.walletCount),
        group_wallet_points_redeemed: dec(f.walletPoints),
        member_redemptions: String(f.memberCount),
        member_points_redeemed: dec(f.memberPoints),
        members_points_balance: dec(balance),
        members_lifetime_points: dec(lifetime),
        members_lifetime_purchases: dec(purchases),
        group_wallet_balance: dec(wallet),
        group_tier: g.programs[0]?.currentSlab ?? "",
        group_reward_redemptions: "",
      };
      groupSummary.push(row);
    }
  }

  const unattributedRows: TruthRow[] = [...unattributed.entries()]
    .map(([key, u]) => {
      const [period = "", userId = ""] = key.split("|");
      return {
        period,
        user_id: userId,
        rows: String(u.rows),
        points_awarded: dec(u.awarded),
        points_redeemed: dec(u.redeemed),
      };
    })
    .sort((a, b) => (a.period < b.period ? -1 : a.period > b.period ? 1 : compareIds(a.user_id, b.user_id)));

  const dataQuality: TruthRow[] = input.files.map((f) => ({
    file: f.file,
    template: f.template,
    rows_read: String(f.rowsRead),
    rows_accepted: String(f.rowsAccepted),
    rows_rejected: String(f.rowsRejected),
  }));

  return {
    timeZone: "UTC",
    months: input.months,
    groupSummary,
    unattributed: unattributedRows,
    groupMembers,
    dataQuality,
    cases: input.cases,
  };
}

/**
 * A truth value as a published CSV cell shows it: text that begins with = + - @ gets a leading ' against
 * formula injection (DESIGN.md "Report contract"), numbers excepted.
 */
export function publishedCell(v: string): string {
  return /^[=+\-@]/.test(v) && !/^-?\d+(\.\d+)?$/.test(v) ? `'${v}` : v;
}

/** "-12.5" -> -12500n (at most 3 places). */
export function thousandths(text: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d{1,3}))?$/.exec(text);
  if (!m) throw new Error(`not a decimal: ${text}`);
  const v = BigInt(m[2] as string) * 1000n + BigInt((m[3] ?? "").padEnd(3, "0"));
  return m[1] === "-" ? -v : v;
}
