/**
 * Re-sends whose event date moved to another month (DESIGN.md invariant 2 across periods): a newer
 * version of a Points row, or of a whole redemption (its Points Redemption Summary row and the Points
 * rows that point at it), dated in an earlier or a later sample month. A correct report counts each
 * such event in its new month only. Planned with their own Rng so that the rest of the sample keeps
 * its bytes.
 */
import { DAY_MS, dateId, daysInMonth, monthStartMs } from "./dates.ts";
import type { MonthEvents, PointsRow, SummaryRow } from "./events.ts";
import type { Rng } from "./rng.ts";
import type { MovedResend } from "./types.ts";
import type { World } from "./world.ts";

export interface Moves {
  /** Newer versions of Points rows, for the incremental Points file. */
  points: PointsRow[];
  /** Newer versions of summary rows, for the incremental summary file. */
  summaries: SummaryRow[];
  moved: MovedResend[];
}

export interface MoveWindows {
  /** The new versions are updated strictly inside (fromMs, toMs): after every earlier version. */
  points: { fromMs: number; toMs: number };
  summaries: { fromMs: number; toMs: number };
}

type Direction = "later" | "earlier";

const lower = (s: string): string => s.toLowerCase();

/**
 * Plans the moved re-sends: nothing with a single month. `taken` holds the Points event ids that the
 * incremental file already re-sends (changed or duplicated): those are left alone.
 */
export function planMoves(
  rng: Rng,
  world: World,
  months: readonly string[],
  monthly: readonly MonthEvents[],
  taken: ReadonlySet<string>,
  windows: MoveWindows,
): Moves {
  const out: Moves = { points: [], summaries: [], moved: [] };
  if (months.length < 2) return out;
  const caseUsers = new Set(Object.values(world.cases).flatMap((c) => c.userIds));
  const grouped = new Set(world.users.filter((u) => u.inSomeGroup).map((u) => u.id));
  const plain = (u: string): boolean => grouped.has(u) && !caseUsers.has(u);
  const used = new Set<string>(taken);
  const pointsByMonth = new Map(months.map((m, i) => [m, monthly[i]?.points ?? []]));
  const summariesByMonth = new Map(months.map((m, i) => [m, monthly[i]?.summaries ?? []]));

  /** (source, target) months: adjacent, the target after the source for "later". */
  const pair = (dir: Direction): [string, string] => {
    const i = rng.int(0, months.length - 2);
    const a = months[i] as string;
    const b = months[i + 1] as string;
    return dir === "later" ? [a, b] : [b, a];
  };
  /** The same time of day on a day of `month` (from day `minDay`, 1-based). */
  const moveTo = (ms: number, month: string, minDay = 1): number => {
    const day = rng.int(minDay, daysInMonth(month));
    return monthStartMs(month) + (day - 1) * DAY_MS + (ms % DAY_MS);
  };
  const versionMs = (w: { fromMs: number; toMs: number }): number =>
    rng.int(Math.floor(w.fromMs / 1000) + 1, Math.ceil(w.toMs / 1000) - 1) * 1000;
  const pickFrom = <T>(items: T[]): T | undefined => (items.length > 0 ? rng.pick(items) : undefined);

  const movePoints = (p: PointsRow, ms: number, why: string): void => {
    used.add(p.eventId);
    out.points.push({ ...p, ms, updatedMs: versionMs(windows.points) });
    out.moved.push({
      template: "points",
      eventId: p.eventId,
      userId: p.userId,
      from: dateId(p.ms),
      to: dateId(ms),
      why,
    });
  };
  /** One Points row that belongs to no redemption. */
  const single = (
    month: string,
    pred: (p: PointsRow) => boolean,
    fallback?: (p: PointsRow) => boolean,
  ): PointsRow | undefined => {
    const free = (pointsByMonth.get(month) ?? []).filter((p) => p.summary === null && !used.has(p.eventId));
    return pickFrom(free.filter(pred)) ?? (fallback ? pickFrom(free.filter(fallback)) : undefined);
  };
  const award = (p: PointsRow): boolean => p.allocated > 0n;

  // 1. Later: a GroupTransactionAdd award of a member in a group (points_awarded, group_transaction_points).
  {
    const [from, to] = pair("later");
    const p = single(
      from,
      (x) => award(x) && x.eventName === "GroupTransactionAdd" && plain(x.userId),
      (x) => award(x) && plain(x.userId),
    );
    if (p) movePoints(p, moveTo(p.ms, to), "award of a group member, moved to a later month");
  }
  // 2. Earlier: an award of a member who has no other row in the target month (members_active_in_period).
  {
    const [from, to] = pair("earlier");
    const p = single(
      from,
      (x) => award(x) && plain(x.userId) && world.silent.get(x.userId)?.has(to) === true,
      (x) => award(x) && plain(x.userId),
    );
    if (p) movePoints(p, moveTo(p.ms, to), "award of a group member, moved to an earlier month");
  }
  // 3. Later, across the joined date: unattributed in the old month, attributed to the group in the new.
  {
    const c = world.cases.rowsBeforeJoinedOn;
    const u = c?.userIds[0];
    const joined = world.current.groups
      .find((g) => g.id === c?.groupIds[0])
      ?.members.find((m) => m.userId === u)?.joinedOn;
    const to = joined?.slice(0, 7);
    const ti = to ? months.indexOf(to) : -1;
    if (u && joined && to && ti > 0) {
      const from = months[rng.int(0, ti - 1)] as string;
      const p = single(from, (x) => award(x) && x.userId === u);
      if (p)
        movePoints(
          p,
          moveTo(p.ms, to, Number(joined.slice(8, 10))),
          "award from before the member joined its group (unattributed) to after (attributed), later",
        );
    }
  }
  // 4. Earlier: an award of a member in no group (unattributed in both months).
  {
    const noGroup = new Set(world.cases.noGroup?.userIds ?? []);
    const [from, to] = pair("earlier");
    const p = single(from, (x) => award(x) && noGroup.has(x.userId));
    if (p) movePoints(p, moveTo(p.ms, to), "award of a member in no group, moved to an earlier month");
  }
  // 5. Later: an expiry or return (points_expired, points_returned).
  {
    const [from, to] = pair("later");
    const p = single(
      from,
      (x) => ["expired", "return", "return_historical"].includes(lower(x.deductionType)) && plain(x.userId),
    );
    if (p) movePoints(p, moveTo(p.ms, to), "expiry or return of a group member, moved to a later month");
  }

  // 6-7. Whole redemptions: the summary row and its Points rows move by the same number of days.
  const redemption = (dir: Direction, type: string, why: string): void => {
    const [from, to] = pair(dir);
    const points = pointsByMonth.get(from) ?? [];
    const candidates = (summariesByMonth.get(from) ?? []).filter((s) => {
      if (lower(s.type) !== type || !plain(s.userId) || s.notes.includes("\n")) return false;
      const parts = points.filter((p) => p.summary === s);
      return parts.length > 0 && parts.every((p) => !used.has(p.eventId));
    });
    const s = pickFrom(candidates);
    if (!s) return;
    const ms = moveTo(s.ms, to);
    const shift = ms - s.ms;
    out.summaries.push({ ...s, ms, autoUpdateS: versionMs(windows.summaries) / 1000 });
    out.moved.push({
      template: "points_redemption_summary",
      eventId: s.eventId,
      userId: s.userId,
      from: dateId(s.ms),
      to: dateId(ms),
      why,
    });
    for (const p of points.filter((x) => x.summary === s))
      movePoints(p, p.ms + shift, `Points row of ${why}`);
  };
  redemption("earlier", "group_redemption", "a group-wallet redemption, moved to an earlier month");
  redemption("later", "redemption", "a member redemption, moved to a later month");
  return out;
}
