/**
 * Generated Capillary exports for the benches (column names of shared/domain/CAPILLARY.md), written
 * streaming so memory stays flat in size: a Points export, a Points Redemption Summary export and a
 * membership (groups of members) as a Member Care style CSV. Everything is a pure function of the row
 * index, so every bench and test sees the same bytes for the same size.
 *
 * The data exercise what the reports depend on: two periods (January and February 2024), decimals with up
 * to 3 places, every deduction type family, GroupTransactionAdd events, group and member redemptions in
 * mixed case, re-sent rows (every 40th row re-sends the row 20 before it with a later version and other
 * amounts: upserted, never added), members who joined mid-period, members of two groups (the default
 * group wins, else the smallest group id), and users in no group (unattributed).
 */

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SUMMARY_COLUMNS } from "../infra/sample/columns.ts";
import type { Membership } from "../lib/domain/membership.ts";

export const HEADER = [
  "event_id",
  "allocated_points",
  "deducted_points",
  "awarded_ref_id",
  "deducted_ref_id",
  "deduction_summary_id",
  "redemption_id",
  "bill_id",
  "bill_number",
  "redemption_bill_id",
  "dim_event_user_id",
  "dim_event_date_id",
  "dim_awarded_date_id",
  "dim_awarded_expiry_date_id",
  "dim_latest_updated_date_id",
  "dim_event_time_id",
  "dim_latest_updated_time_id",
  "dim_event_zone_till_id",
  "dim_category_id",
  "dim_deduction_type_id",
  "dim_points_event_type_id",
  "dim_points_promotion_id",
  "event_name",
  "dim_event_program_id",
  "dim_awarded_program_id",
  "auto_update_time",
];

/** The Points Redemption Summary template's columns, as the sample generator writes them. */
export const REDEMPTION_HEADER = SUMMARY_COLUMNS;

export const MEMBERSHIP_HEADER = ["group_id", "user_id", "role", "default_group", "joined_on"];

const DEDUCTIONS = [
  "redeemed",
  "expired",
  "return",
  "redemption_reversal",
  "Redeemed",
  "return_historical",
  "expiry_reverted",
  "manual_adjustment",
];
const REDEMPTION_TYPES = ["GROUP_REDEMPTION", "REDEMPTION", "redemption", "REVERSAL"];
/** Users of the default Points export (bench:ingest, the memory test). */
const DEFAULT_USERS = 50_000;
const FIRST_USER = 30_000;
/** Every RESEND-th row re-sends the row RESEND_BACK before it (a later version). */
const RESEND = 40;
const RESEND_BACK = 20;

/** The user of row i of a dataset: a multiplicative hash, so that user and row kind are uncorrelated. */
function userOf(i: number, users: number, salt: number): string {
  return String(FIRST_USER + ((Math.imul(i + salt, 0x9e3779b1) >>> 0) % users));
}

/** An event date id (YYYYMMDD) of row i: January or February 2024, days 1 to 28. */
function dayOf(i: number): number {
  return 20240000 + (1 + (i % 2)) * 100 + 1 + ((i >>> 1) % 28);
}

function pointsFields(i: number, users: number): string[] {
  const awarded = i % 3 !== 0;
  const day = dayOf(i);
  return [
    String(7_000_000 + i),
    awarded ? `${i % 997}.5` : "0",
    awarded ? "0" : `${i % 89}.25`,
    awarded ? "-1" : String(7_000_000 + i - 50),
    "-1",
    awarded ? "-1" : String(900_000 + (i % 5000)),
    awarded ? "" : "AB12CD",
    String(55_000 + (i % 10_000)),
    // 1 row in 50 has a quoted bill number with a comma and a doubled quote.
    i % 50 === 0 ? `"B${i % 1000}, ""manual"""` : `B${i % 10_000}`,
    "-1",
    userOf(i, users, 0),
    String(day),
    String(day),
    String(day + 10_000),
    String(day),
    String(i % 1440),
    String((i * 7) % 1440),
    String(500 + (i % 300)),
    "1",
    awarded ? "" : (DEDUCTIONS[Math.floor(i / 3) % DEDUCTIONS.length] ?? ""),
    awarded ? "awarded" : "deducted",
    "-1",
    awarded && i % 5 === 1 ? "GroupTransactionAdd" : awarded ? "TransactionAdd" : "",
    "1001",
    "1001",
    String(1_704_067_200 + i),
  ];
}

/** Row i of the Points export (no line end). `users` users take part (default 50,000). */
export function pointsRow(i: number, users = DEFAULT_USERS): string {
  if (i % RESEND !== RESEND - 1 || i < RESEND_BACK) return pointsFields(i, users).join(",");
  // A re-sent event: same id, user and date, other amounts, a later latest-updated date.
  const f = pointsFields(i - RESEND_BACK, users);
  const deducted = f[2] !== "0";
  f[1] = deducted ? "0" : `${i % 991}.125`;
  f[2] = deducted ? `${i % 83}.75` : "0";
  f[14] = "20240315";
  return f.join(",");
}

function redemptionFields(i: number, users: number): string[] {
  const type = REDEMPTION_TYPES[i % REDEMPTION_TYPES.length] ?? "";
  const epoch = 1_704_067_200 + i;
  return [
    String(900_000 + i),
    `${i % 500}.${String(i % 1000).padStart(3, "0")}`,
    type === "GROUP_REDEMPTION" ? "-1" : "7",
    type,
    userOf(i, users, 7),
    String(dayOf(i)),
    String(500 + (i % 300)),
    "1001",
    String(epoch),
    String(epoch),
    "-1",
    "Not Captured",
    "AB12CD",
    `EXT${i}`,
    i % 25 === 0 ? `"redeemed at till, ""front desk"""` : "",
    i % 2 === 0 ? "API" : "IMPORT",
    String(i),
  ];
}

/** Row i of the Points Redemption Summary export (no line end); re-sends as in pointsRow. */
export function redemptionRow(i: number, users: number): string {
  if (i % RESEND !== RESEND - 1 || i < RESEND_BACK) return redemptionFields(i, users).join(",");
  const f = redemptionFields(i - RESEND_BACK, users);
  f[1] = `${i % 300}.5`;
  f[9] = String(1_800_000_000 + i); // auto_update_time: later
  return f.join(",");
}

/**
 * The membership of `users` users: the first 90% in groups of 4 (group id 500000 + n, the first member
 * PRIMARY), the rest in no group. Members 2 of 4 joined 2024-01-15, some others 2024-02-10 (rows before
 * count unattributed); every member whose index ends in 1 is also in the previous group, not as its
 * default group, and half of those have no default group at all (then the smaller id, the other group, wins).
 */
export function* membershipRows(users: number): Generator<string> {
  const inGroups = Math.floor((users * 9) / 10);
  for (let u = 0; u < inGroups; u++) {
    const g = Math.floor(u / 4);
    const user = String(FIRST_USER + u);
    const joined = u % 4 === 2 ? "2024-01-15" : u % 8 === 3 ? "2024-02-10" : "2023-06-01";
    const twoGroups = u % 10 === 1 && g > 0;
    const isDefault = !(twoGroups && u % 20 === 11);
    yield [String(500_000 + g), user, u % 4 === 0 ? "PRIMARY" : "SECONDARY", String(isDefault), joined].join(
      ",",
    );
    if (twoGroups) yield [String(500_000 + g - 1), user, "SECONDARY", "false", "2023-06-01"].join(",");
  }
}

/** Writes a header and lines to a file, streaming; returns the bytes written. */
export async function writeLines(
  path: string,
  header: readonly string[],
  lines: Iterable<string>,
): Promise<number> {
  const out = createWriteStream(path);
  let bytes = 0;
  let buf = `${header.join(",")}\n`;
  for (const line of lines) {
    buf += `${line}\n`;
    if (buf.length > 1 << 20) {
      bytes += buf.length;
      if (!out.write(buf)) await once(out, "drain");
      buf = "";
    }
  }
  bytes += buf.length;
  out.end(buf);
  await once(out, "finish");
  return bytes;
}

function* rowsOf(n: number, row: (i: number) => string): Generator<string> {
  for (let i = 0; i < n; i++) yield row(i);
}

/** Writes a generated Points export of `rows` rows to a file, streaming (memory flat in size). */
export function writePointsExport(path: string, rows: number, users = DEFAULT_USERS): Promise<number> {
  return writeLines(
    path,
    HEADER,
    rowsOf(rows, (i) => pointsRow(i, users)),
  );
}

export interface BenchData {
  dir: string;
  /** Export rows in total (Points + Redemption Summary), and of each. */
  rows: number;
  pointsRows: number;
  redemptionRows: number;
  /** Bytes of the two exports (what ingestion reads). */
  bytes: number;
  users: number;
  files: { points: string; redemptions: string; membership: string };
}

/**
 * The whole-path bench data of one size: `rows` export rows (90% Points, 10% Redemption Summary) over
 * rows/20 users (at least 2,000), and their membership, as three CSV files in `dir`, described by
 * `dir/bench.json` (read by the worker processes).
 */
export async function writeBenchData(dir: string, rows: number): Promise<BenchData> {
  const users = Math.max(2_000, Math.round(rows / 20));
  const redemptionRows = Math.floor(rows / 10);
  const pointsRows = rows - redemptionRows;
  const files = {
    points: join(dir, "points.csv"),
    redemptions: join(dir, "points_redemption_summary.csv"),
    membership: join(dir, "membership.csv"),
  };
  const a = await writePointsExport(files.points, pointsRows, users);
  const b = await writeLines(
    files.redemptions,
    REDEMPTION_HEADER,
    rowsOf(redemptionRows, (i) => redemptionRow(i, users)),
  );
  await writeLines(files.membership, MEMBERSHIP_HEADER, membershipRows(users));
  const data: BenchData = { dir, rows, pointsRows, redemptionRows, bytes: a + b, users, files };
  await writeFile(join(dir, "bench.json"), JSON.stringify(data));
  return data;
}

export async function readBenchData(dir: string): Promise<BenchData> {
  return JSON.parse(await readFile(join(dir, "bench.json"), "utf8")) as BenchData;
}

/** The generated membership CSV (group_id, user_id, role, default_group, joined_on) as synced memberships. */
export async function readMemberships(file: string): Promise<Membership[]> {
  const lines = (await readFile(file, "utf8")).split("\n").slice(1);
  const out: Membership[] = [];
  for (const line of lines) {
    if (line === "") continue;
    const [groupId = "", userId = "", role = "", isDefault = "", joinedOn = ""] = line.split(",");
    out.push({
      groupId,
      userId,
      role,
      primaryMember: role === "PRIMARY",
      defaultGroup: isDefault === "true",
      active: true,
      joinedOn,
      firstSeenAt: "2024-03-01T00:00:00.000Z",
      lastSeenAt: "2024-03-01T00:00:00.000Z",
      exitSeenAt: null,
      firstSeenExited: false,
      previousStints: [],
    });
  }
  return out;
}
