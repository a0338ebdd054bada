/** Changed re-sends for the incremental Points file, and bad-row bodies for every template. */
import {
  MEMBERS_COLUMNS,
  type MembersColumn,
  ordered,
  type PointsColumn,
  pointsFields,
  type SummaryColumn,
  summaryFields,
} from "./columns.ts";
import { amount, caseVariant, type PointsRow, type SummaryRow, style } from "./events.ts";
import { type MemberRow, memberFields } from "./members.ts";
import type { Rng } from "./rng.ts";

export type ChangeKind = "allocated" | "deducted" | "deductionType" | "eventName";

const RETYPES = [
  "expired",
  "return",
  "return_historical",
  "expiry_reverted",
  "redemption_reverted",
  "cancelled",
  "manual_adjustment",
  "redeemed_by_transfer",
] as const;

/** A newer version of `p`, updated at a time inside (fromMs, toMs). */
export function changeRow(
  rng: Rng,
  p: PointsRow,
  fromMs: number,
  toMs: number,
): { row: PointsRow; kinds: ChangeKind[] } {
  const updatedMs = rng.int(Math.floor(fromMs / 1000) + 1, Math.ceil(toMs / 1000) - 1) * 1000;
  const row: PointsRow = { ...p, updatedMs, style: style(rng) };
  const kinds: ChangeKind[] = [];
  if (p.allocated > 0n) {
    do row.allocated = amount(rng);
    while (row.allocated === p.allocated);
    kinds.push("allocated");
    if (p.eventName === "GroupTransactionAdd" && rng.chance(0.3)) {
      row.eventName = "TransactionAdd";
      kinds.push("eventName");
    }
  } else if (p.deductionType.toLowerCase() === "redeemed" || rng.chance(0.5)) {
    row.deducted = p.deducted + BigInt(rng.int(1, 50_000));
    kinds.push("deducted");
  } else {
    const current = p.deductionType.toLowerCase();
    row.deductionType = caseVariant(rng, rng.pick(RETYPES.filter((t) => t !== current)));
    kinds.push("deductionType");
  }
  return { row, kinds };
}

export interface BadRecord {
  fields: string[];
  reason: string;
}

export type PointsBadKind = "allocated" | "date" | "eventId" | "user";

export function badPoints(body: PointsRow, kind: PointsBadKind, columns: readonly PointsColumn[]): BadRecord {
  const f = pointsFields(body);
  const year = f.dim_event_date_id.slice(0, 4);
  const cases: Record<PointsBadKind, [Partial<Record<PointsColumn, string>>, string]> = {
    allocated: [{ allocated_points: "12x" }, "allocated_points is not a number: 12x"],
    date: [{ dim_event_date_id: `${year}1345` }, `dim_event_date_id is not a date: ${year}1345`],
    eventId: [{ event_id: "" }, "event_id is empty"],
    user: [{ dim_event_user_id: "abc" }, "dim_event_user_id is not an id: abc"],
  };
  const [patch, reason] = cases[kind];
  return { fields: ordered({ ...f, ...patch }, columns), reason };
}

export type SummaryBadKind = "points" | "date" | "user" | "eventId";

export function badSummary(
  body: SummaryRow,
  kind: SummaryBadKind,
  columns: readonly SummaryColumn[],
): BadRecord {
  const f = summaryFields(body);
  const year = f.dim_event_date_id.slice(0, 4);
  const cases: Record<SummaryBadKind, [Partial<Record<SummaryColumn, string>>, string]> = {
    points: [{ points_redeemed: "12x" }, "points_redeemed is not a number: 12x"],
    date: [{ dim_event_date_id: `${year}1345` }, `dim_event_date_id is not a date: ${year}1345`],
    user: [{ dim_event_user_id: "abc" }, "dim_event_user_id is not an id: abc"],
    eventId: [{ event_id: "" }, "event_id is empty"],
  };
  const [patch, reason] = cases[kind];
  return { fields: ordered({ ...f, ...patch }, columns), reason };
}

export type MembersBadKind = "user" | "loyalty" | "emptyUser";

export function badMember(
  body: MemberRow,
  kind: MembersBadKind,
  columns: readonly MembersColumn[] = MEMBERS_COLUMNS,
): BadRecord {
  const f = memberFields(body);
  const cases: Record<MembersBadKind, [Partial<Record<MembersColumn, string>>, string]> = {
    user: [{ dim_event_user_id: "abc" }, "dim_event_user_id is not an id: abc"],
    loyalty: [{ loyalty_points: "12x" }, "loyalty_points is not a number: 12x"],
    emptyUser: [{ dim_event_user_id: "" }, "dim_event_user_id is empty"],
  };
  const [patch, reason] = cases[kind];
  return { fields: ordered({ ...f, ...patch }, columns), reason };
}
