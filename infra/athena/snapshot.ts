/**
 * Snapshots of the DynamoDB items the aggregation reads (ledger, memberships, group metas), as the small
 * CSV files the Athena tables of `infra/athena/tables.sql` sit on. Values are written as the aggregation
 * sees them: exit instants become calendar dates in the report time zone (calendarDateIn), wallet
 * balances integer thousandths (parseThousandths), so that `group_summary.sql` needs no time-zone or
 * decimal parsing of its own.
 */
import type { LedgerEntry } from "../../lib/adapters/ledger-store.ts";
import { calendarDateIn } from "../../lib/domain/attribution.ts";
import { parseThousandths } from "../../lib/domain/decimal.ts";
import type { GroupMeta, Membership } from "../../lib/domain/membership.ts";

export interface SnapshotFiles {
  /** `snapshots/<table>/<table>.csv` relative path -> CSV text (header first). */
  [path: string]: string;
}

function cell(v: string | number | boolean | null): string {
  const s = v === null ? "" : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function csv(columns: readonly string[], rows: readonly (string | number | boolean | null)[][]): string {
  return [columns.join(","), ...rows.map((r) => r.map(cell).join(","))].map((l) => `${l}\n`).join("");
}

export const SNAPSHOT_COLUMNS = {
  ledger_files: [
    "file_id",
    "bucket",
    "source_key",
    "sequencer",
    "delivered_at",
    "status",
    "template",
    "rows_accepted",
    "has_event_name",
  ],
  memberships: [
    "group_id",
    "user_id",
    "role",
    "default_group",
    "first_seen_exited",
    "stint",
    "joined_on",
    "active",
    "exit_seen_at",
    "exit_seen_on",
  ],
  group_metas: ["group_id", "external_id", "name", "status", "synced_at"],
  group_programs: ["group_id", "program_index", "program_id", "loyalty_points_thousandths", "current_slab"],
} as const;

/** One ledger row per (file, entry); a file without entries gets one row with an empty template. */
export function ledgerRows(entries: readonly LedgerEntry[]): (string | number | boolean | null)[][] {
  return entries.flatMap((e) => {
    const head = [e.fileId, e.bucket, e.sourceKey, e.sequencer, e.deliveredAt, e.status];
    if (e.entries.length === 0) return [[...head, null, 0, false]];
    return e.entries.map((s) => [...head, s.template, s.rowsAccepted, s.columns.includes("event_name")]);
  });
}

/**
 * One row per stint: earlier stints (stint 0..n-1, never active, ended by their observed exit), then the
 * current one (stint n) with the membership's active flag and exit.
 */
export function membershipRows(
  memberships: readonly Membership[],
  timeZone: string,
): (string | number | boolean | null)[][] {
  return memberships.flatMap((m) => {
    const head = [m.groupId, m.userId, m.role, m.defaultGroup, m.firstSeenExited];
    const stints = m.previousStints.map((s, i) => [
      ...head,
      i,
      s.joinedOn,
      false,
      s.exitSeenAt,
      calendarDateIn(s.exitSeenAt, timeZone),
    ]);
    const exitOn = m.exitSeenAt === null ? null : calendarDateIn(m.exitSeenAt, timeZone);
    return [...stints, [...head, m.previousStints.length, m.joinedOn, m.active, m.exitSeenAt, exitOn]];
  });
}

export function groupRows(groups: readonly GroupMeta[]): {
  metas: (string | null)[][];
  programs: (string | number | null)[][];
} {
  return {
    metas: groups.map((g) => [g.groupId, g.externalId, g.name, g.status, g.syncedAt]),
    programs: groups.flatMap((g) =>
      g.programs.map((p, i) => {
        const t = parseThousandths(p.loyaltyPoints);
        return [g.groupId, i, p.programId, typeof t === "number" ? t : null, p.currentSlab];
      }),
    ),
  };
}

/** The four snapshot files, keyed by their path under the Athena data root. */
export function snapshotFiles(input: {
  ledger: readonly LedgerEntry[];
  memberships: readonly Membership[];
  groups: readonly GroupMeta[];
  timeZone: string;
}): SnapshotFiles {
  const g = groupRows(input.groups);
  const C = SNAPSHOT_COLUMNS;
  return {
    "snapshots/ledger_files/ledger_files.csv": csv(C.ledger_files, ledgerRows(input.ledger)),
    "snapshots/memberships/memberships.csv": csv(
      C.memberships,
      membershipRows(input.memberships, input.timeZone),
    ),
    "snapshots/group_metas/group_metas.csv": csv(C.group_metas, g.metas),
    "snapshots/group_programs/group_programs.csv": csv(C.group_programs, g.programs),
  };
}
