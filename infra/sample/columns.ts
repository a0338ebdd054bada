/** Column names of the three export templates, and how one generated row is written into them. */
import { dateId, timeId } from "./dates.ts";
import { formatFixed, placesNeeded } from "./decimal.ts";
import type { PointsRow, Style, SummaryRow } from "./events.ts";

export const POINTS_COLUMNS = [
  "event_id",
  "dim_event_user_id",
  "dim_event_date_id",
  "dim_event_time_id",
  "allocated_points",
  "deducted_points",
  "dim_points_event_type_id",
  "dim_deduction_type_id",
  "deduction_summary_id",
  "redemption_id",
  "bill_id",
  "bill_number",
  "dim_event_zone_till_id",
  "dim_category_id",
  "dim_points_promotion_id",
  "event_name",
  "dim_event_program_id",
  "dim_latest_updated_date_id",
  "dim_latest_updated_time_id",
  "auto_update_time",
] as const;
export type PointsColumn = (typeof POINTS_COLUMNS)[number];

/** The same columns in other orders (schedules may reorder columns). */
export const POINTS_COLUMNS_B: readonly PointsColumn[] = [
  "dim_event_user_id",
  "event_id",
  "dim_event_date_id",
  "dim_event_time_id",
  "dim_points_event_type_id",
  "deducted_points",
  "allocated_points",
  "dim_deduction_type_id",
  "event_name",
  "dim_points_promotion_id",
  "deduction_summary_id",
  "redemption_id",
  "bill_number",
  "bill_id",
  "dim_event_zone_till_id",
  "dim_category_id",
  "dim_event_program_id",
  "auto_update_time",
  "dim_latest_updated_date_id",
  "dim_latest_updated_time_id",
];
export const POINTS_COLUMNS_C: readonly PointsColumn[] = [
  "auto_update_time",
  "dim_latest_updated_date_id",
  "dim_latest_updated_time_id",
  "event_id",
  "allocated_points",
  "deducted_points",
  "dim_deduction_type_id",
  "dim_points_event_type_id",
  "dim_event_user_id",
  "dim_event_date_id",
  "dim_event_time_id",
  "deduction_summary_id",
  "redemption_id",
  "bill_id",
  "bill_number",
  "dim_event_zone_till_id",
  "dim_category_id",
  "dim_points_promotion_id",
  "event_name",
  "dim_event_program_id",
];

export const SUMMARY_COLUMNS = [
  "event_id",
  "points_redeemed",
  "point_category_id",
  "dim_redemption_type_id",
  "dim_event_user_id",
  "dim_event_date_id",
  "dim_event_zone_till_id",
  "dim_redemption_program_id",
  "points_redemption_time",
  "auto_update_time",
  "redemption_bill_id",
  "redemption_bill_number",
  "redemption_id",
  "external_reference_number",
  "notes",
  "source_type",
  "reference_id",
] as const;
export type SummaryColumn = (typeof SUMMARY_COLUMNS)[number];

/** Template display names, in the same order as SUMMARY_COLUMNS. */
export const SUMMARY_DISPLAY_COLUMNS = [
  "Event Id",
  "Points Redeemed",
  "Point Category Id",
  "Redemption Type",
  "User Id",
  "Event Date",
  "Till Id",
  "Program Id",
  "Redemption Time",
  "Auto Update Time",
  "Bill Id",
  "Bill Number",
  "Redemption Id",
  "External Reference Number",
  "Notes",
  "Source Type",
  "Reference Id",
] as const;

export const MEMBERS_COLUMNS = [
  "dim_event_user_id",
  "dim_event_date_id",
  "loyalty_id",
  "loyalty_points",
  "lifetime_points",
  "lifetime_purchased",
  "redeemed_points",
  "expired_points",
  "number_of_visits",
  "total_bill_amount",
  "User.slab_name",
  "User.slab_number",
  "auto_update_time",
] as const;
export type MembersColumn = (typeof MEMBERS_COLUMNS)[number];

export const MEMBERS_COLUMNS_B: readonly MembersColumn[] = [
  "dim_event_user_id",
  "loyalty_id",
  "auto_update_time",
  "User.slab_name",
  "User.slab_number",
  "loyalty_points",
  "lifetime_points",
  "lifetime_purchased",
  "redeemed_points",
  "expired_points",
  "number_of_visits",
  "total_bill_amount",
  "dim_event_date_id",
];

/** A decimal written in one of three styles: `120.5`/`7`, `120.500`/`7.000`, `120.50`/`7.00`. */
export function writeDecimal(v: bigint, s: Style): string {
  const needed = placesNeeded(v);
  if (s === 1) return formatFixed(v, 3);
  if (s === 2) return formatFixed(v, needed === 3 ? 3 : 2);
  return formatFixed(v, needed);
}

export function pointsFields(r: PointsRow): Record<PointsColumn, string> {
  const award = r.allocated > 0n;
  return {
    event_id: r.eventId,
    dim_event_user_id: r.userId,
    dim_event_date_id: dateId(r.ms),
    dim_event_time_id: timeId(r.ms),
    allocated_points: writeDecimal(r.allocated, r.style),
    deducted_points: writeDecimal(r.deducted, r.style),
    dim_points_event_type_id: award ? "awarded" : "deducted",
    dim_deduction_type_id: r.deductionType,
    deduction_summary_id: r.deductionSummaryId,
    redemption_id: r.redemptionId,
    bill_id: r.billId,
    bill_number: r.billNumber,
    dim_event_zone_till_id: r.tillId,
    dim_category_id: r.categoryId,
    dim_points_promotion_id: r.promotionId,
    event_name: r.eventName,
    dim_event_program_id: r.programId,
    dim_latest_updated_date_id: dateId(r.updatedMs),
    dim_latest_updated_time_id: timeId(r.updatedMs),
    auto_update_time: String(Math.floor(r.updatedMs / 1000)),
  };
}

export function summaryFields(r: SummaryRow): Record<SummaryColumn, string> {
  return {
    event_id: r.eventId,
    points_redeemed: writeDecimal(r.pointsRedeemed, r.style),
    point_category_id: r.categoryId,
    dim_redemption_type_id: r.type,
    dim_event_user_id: r.userId,
    dim_event_date_id: dateId(r.ms),
    dim_event_zone_till_id: r.tillId,
    dim_redemption_program_id: r.programId,
    points_redemption_time: String(r.ms),
    auto_update_time: String(r.autoUpdateS),
    redemption_bill_id: r.billId,
    redemption_bill_number: r.billNumber,
    redemption_id: r.redemptionId,
    external_reference_number: r.extRef,
    notes: r.notes,
    source_type: r.sourceType,
    reference_id: r.referenceId,
  };
}

export function ordered<C extends string>(fields: Record<C, string>, columns: readonly C[]): string[] {
  return columns.map((c) => fields[c]);
}
