/**
 * The bench's second, independent oracle: DuckDB (one thread) computes the group summary straight from
 * the raw export CSVs and the membership CSV of bench/ingest-data.ts, with SQL written for the bench (not
 * infra/athena/group_summary.sql, which reads our staged data), and `firstDifference` compares it with
 * our group_summary rows, figure by figure, decimals as exact integer thousandths (never floats).
 *
 * The SQL implements DESIGN.md's rules as far as the generated data need them: newest version per event
 * id (Points: latest-updated date, then time; Redemption Summary: auto-update time), attribution by
 * membership (joined on or before the event date; the default group wins, else the smallest group id;
 * every generated membership is active and known), figures per group and period of the event date,
 * members_total on the period's last day, and every known group in every period with activity.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import type { BenchData } from "./ingest-data.ts";

/** The figures DuckDB computes: [column, kind]. Counts are integers, decimals exact thousandths. */
export const ORACLE_FIGURES = [
  ["members_total", "count"],
  ["members_active_in_period", "count"],
  ["points_awarded", "decimal"],
  ["group_transaction_points", "decimal"],
  ["points_redeemed", "decimal"],
  ["points_expired", "decimal"],
  ["points_returned", "decimal"],
  ["points_reversed", "decimal"],
  ["group_wallet_redemptions", "count"],
  ["group_wallet_points_redeemed", "decimal"],
  ["member_redemptions", "count"],
  ["member_points_redeemed", "decimal"],
] as const;

const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
const CSV = "header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"'";
const isoDate = (c: string) => `substr(${c}, 1, 4) || '-' || substr(${c}, 5, 2) || '-' || substr(${c}, 7, 2)`;
const thousandths = (c: string) => `CAST(CAST(coalesce(${c}, '0') AS DECIMAL(18, 3)) * 1000 AS BIGINT)`;

/** The group summary SQL over the three CSV files; decimals come out as integer thousandths. */
export function groupSummarySql(files: BenchData["files"]): string {
  return `
WITH
points AS (
  SELECT * FROM (
    SELECT 'p' AS dataset, event_id, dim_event_user_id AS user_id, ${isoDate("dim_event_date_id")} AS event_date,
      ${thousandths("allocated_points")} AS allocated, ${thousandths("deducted_points")} AS deducted,
      lower(coalesce(dim_deduction_type_id, '')) AS deduction_type, lower(coalesce(event_name, '')) AS event_name,
      CAST(0 AS BIGINT) AS redeemed, '' AS redemption_type,
      row_number() OVER (PARTITION BY event_id ORDER BY CAST(dim_latest_updated_date_id AS BIGINT) DESC,
        CAST(dim_latest_updated_time_id AS BIGINT) DESC) AS rn
    FROM read_csv(${lit(files.points)}, ${CSV})
  ) WHERE rn = 1
),
redemptions AS (
  SELECT * FROM (
    SELECT 'r' AS dataset, event_id, dim_event_user_id AS user_id, ${isoDate("dim_event_date_id")} AS event_date,
      CAST(0 AS BIGINT) AS allocated, CAST(0 AS BIGINT) AS deducted, '' AS deduction_type, '' AS event_name,
      ${thousandths("points_redeemed")} AS redeemed, lower(coalesce(dim_redemption_type_id, '')) AS redemption_type,
      row_number() OVER (PARTITION BY event_id ORDER BY CAST(auto_update_time AS BIGINT) DESC) AS rn
    FROM read_csv(${lit(files.redemptions)}, ${CSV})
  ) WHERE rn = 1
),
activity AS (
  SELECT dataset, event_id, user_id, event_date, substr(event_date, 1, 7) AS period, allocated, deducted,
    deduction_type, event_name, redeemed, redemption_type FROM points
  UNION ALL
  SELECT dataset, event_id, user_id, event_date, substr(event_date, 1, 7), allocated, deducted,
    deduction_type, event_name, redeemed, redemption_type FROM redemptions
),
memberships AS (
  SELECT group_id, user_id, default_group = 'true' AS is_default, joined_on
  FROM read_csv(${lit(files.membership)}, ${CSV})
),
attributed AS (
  SELECT * FROM (
    SELECT a.*, m.group_id,
      row_number() OVER (PARTITION BY a.dataset, a.event_id
        ORDER BY m.is_default DESC, CAST(m.group_id AS BIGINT)) AS pick
    FROM activity a JOIN memberships m ON m.user_id = a.user_id AND m.joined_on <= a.event_date
  ) WHERE pick = 1
),
figures AS (
  SELECT period, group_id,
    count(DISTINCT user_id) AS active,
    sum(allocated) AS awarded,
    sum(CASE WHEN event_name = 'grouptransactionadd' THEN allocated ELSE 0 END) AS group_txn,
    sum(CASE WHEN deduction_type = 'redeemed' THEN deducted ELSE 0 END) AS redeemed_pts,
    sum(CASE WHEN deduction_type = 'expired' THEN deducted ELSE 0 END) AS expired,
    sum(CASE WHEN deduction_type IN ('return', 'return_historical') THEN deducted ELSE 0 END) AS returned,
    sum(CASE WHEN deduction_type IN ('redemption_reversal', 'redemption_reverted', 'expiry_reverted',
      'redeemed_by_transfer_reverted') THEN deducted ELSE 0 END) AS reversed,
    sum(CASE WHEN redemption_type = 'group_redemption' THEN 1 ELSE 0 END) AS wallet_count,
    sum(CASE WHEN redemption_type = 'group_redemption' THEN redeemed ELSE 0 END) AS wallet_points,
    sum(CASE WHEN redemption_type IN ('redemption', 'redeemed') THEN 1 ELSE 0 END) AS member_count,
    sum(CASE WHEN redemption_type IN ('redemption', 'redeemed') THEN redeemed ELSE 0 END) AS member_points
  FROM attributed GROUP BY period, group_id
),
periods AS (
  -- The generated periods are in the past: members_total counts on each one's last day.
  SELECT period, CAST(last_day(CAST(period || '-01' AS DATE)) AS VARCHAR) AS on_date
  FROM (SELECT DISTINCT period FROM activity)
),
member_groups AS (
  SELECT * FROM (
    SELECT p.period, m.group_id, m.user_id,
      row_number() OVER (PARTITION BY p.period, m.user_id
        ORDER BY m.is_default DESC, CAST(m.group_id AS BIGINT)) AS pick
    FROM periods p JOIN memberships m ON m.joined_on <= p.on_date
  ) WHERE pick = 1
),
totals AS (SELECT period, group_id, count(*) AS members_total FROM member_groups GROUP BY period, group_id),
all_groups AS (SELECT DISTINCT group_id FROM memberships)
SELECT p.period, g.group_id,
  CAST(coalesce(t.members_total, 0) AS VARCHAR) AS members_total,
  CAST(coalesce(f.active, 0) AS VARCHAR) AS members_active_in_period,
  CAST(coalesce(f.awarded, 0) AS VARCHAR) AS points_awarded,
  CAST(coalesce(f.group_txn, 0) AS VARCHAR) AS group_transaction_points,
  CAST(coalesce(f.redeemed_pts, 0) AS VARCHAR) AS points_redeemed,
  CAST(coalesce(f.expired, 0) AS VARCHAR) AS points_expired,
  CAST(coalesce(f.returned, 0) AS VARCHAR) AS points_returned,
  CAST(coalesce(f.reversed, 0) AS VARCHAR) AS points_reversed,
  CAST(coalesce(f.wallet_count, 0) AS VARCHAR) AS group_wallet_redemptions,
  CAST(coalesce(f.wallet_points, 0) AS VARCHAR) AS group_wallet_points_redeemed,
  CAST(coalesce(f.member_count, 0) AS VARCHAR) AS member_redemptions,
  CAST(coalesce(f.member_points, 0) AS VARCHAR) AS member_points_redeemed
FROM periods p CROSS JOIN all_groups g
LEFT JOIN figures f ON f.period = p.period AND f.group_id = g.group_id
LEFT JOIN totals t ON t.period = p.period AND t.group_id = g.group_id
ORDER BY p.period, CAST(g.group_id AS BIGINT)`;
}

/** Runs the SQL on DuckDB (in memory, SET threads = 1): rows of text cells, decimals in thousandths. */
export async function duckdbGroupSummary(files: BenchData["files"]): Promise<Record<string, string>[]> {
  const instance = await DuckDBInstance.create(":memory:");
  const con = await instance.connect();
  try {
    await con.run("SET threads = 1");
    const reader = await con.runAndReadAll(groupSummarySql(files));
    return reader
      .getRowObjectsJS()
      .map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)])));
  } finally {
    con.closeSync();
    instance.closeSync();
  }
}

/** A decimal figure of ours ("12.5", "-3", "0") as integer thousandths; null when it is not one. */
export function toThousandths(s: string): bigint | null {
  const m = /^(-?)(\d+)(?:\.(\d{1,3}))?$/.exec(s);
  if (!m) return null;
  const v = BigInt(m[2] ?? "0") * 1000n + BigInt((m[3] ?? "").padEnd(3, "0"));
  return m[1] === "-" ? -v : v;
}

/**
 * The first difference between DuckDB's rows and ours (our group_summary rows, any order), as a
 * message; null when every (period, group) row and every figure of ORACLE_FIGURES is equal.
 */
export function firstDifference(
  duck: readonly Record<string, string>[],
  ours: readonly Record<string, string>[],
): string | null {
  const key = (r: Record<string, string>) => `${r.period}|${r.group_id}`;
  const mine = new Map(ours.map((r) => [key(r), r]));
  if (mine.size !== ours.length) return `our group_summary has ${ours.length - mine.size} duplicate rows`;
  for (const d of duck) {
    const o = mine.get(key(d));
    if (!o) return `period ${d.period} group ${d.group_id}: DuckDB has the row, ours has not`;
    mine.delete(key(d));
    for (const [col, kind] of ORACLE_FIGURES) {
      const theirs = BigInt(d[col] ?? "NaN");
      const v = o[col] ?? "";
      const ourValue = kind === "count" ? (/^\d+$/.test(v) ? BigInt(v) : null) : toThousandths(v);
      if (ourValue !== theirs) {
        const shown = kind === "decimal" ? `${theirs} thousandths` : String(theirs);
        return `period ${d.period} group ${d.group_id} ${col}: DuckDB ${shown}, ours ${JSON.stringify(v)}`;
      }
    }
  }
  const extra = mine.keys().next();
  if (!extra.done) return `${mine.size} rows of ours are not in DuckDB's, e.g. ${extra.value}`;
  return null;
}
