/**
 * Aggregate staged rows + membership into the group reports of each period, and publish them atomically:
 * every file is written under a run id, then the period manifest switches to the run, then
 * `reports/latest/manifest.json` points at the newest period's run. Readers that follow a manifest never
 * see a mix of two runs.
 */
import type { Log } from "./logger.ts";
import { createHash, randomBytes } from "node:crypto";
import type { EntryStats, LedgerEntry, LedgerStore } from "./adapters/ledger-store.ts";
import type { S3Objects } from "./adapters/s3-objects.ts";
import { unpack } from "./adapters/unpack.ts";
import {
  type Capabilities,
  GROUP_MEMBERS_COLUMNS,
  GROUP_SUMMARY_COLUMNS,
  PeriodAggregator,
  UNATTRIBUTED_COLUMNS,
  Upserter,
} from "./domain/aggregate.ts";
import { buildAttributionIndex } from "./domain/attribution.ts";
import { CsvParser } from "./domain/csv.ts";
import type { ZonedCalendar } from "./domain/dates.ts";
import type { GroupMeta, Membership } from "./domain/membership.ts";
import { renderCsv, renderJson } from "./domain/report.ts";

export interface MembershipReader {
  listGroupMetas(): Promise<GroupMeta[]>;
  listAllMemberships(): AsyncIterable<Membership>;
}

export interface AggregateDeps {
  objects: S3Objects;
  ledger: LedgerStore;
  membership: MembershipReader;
  settings: { stagingBucket: string; reportsBucket: string; partitions: number; calendar: ZonedCalendar };
  now: () => Date;
  log: Log;
}

export interface PublishedReport {
  period: string;
  runId: string;
  manifestKey: string;
  files: { key: string; rows: number; sha256: string }[];
  groups: number;
}

export const DATA_QUALITY_COLUMNS = [
  "file",
  "template",
  "rows_read",
  "rows_accepted",
  "rows_rejected",
  "first_reject_reason",
  "file_status",
  "error",
] as const;

/** The newest committed version of each source key (sequencer, then delivery time). */
export function currentFiles(entries: readonly LedgerEntry[]): LedgerEntry[] {
  const best = new Map<string, LedgerEntry>();
  for (const e of entries) {
    if (e.status !== "COMMITTED") continue;
    const id = `${e.bucket}/${e.sourceKey}`;
    const cur = best.get(id);
    if (!cur || compareVersions(e, cur) > 0) best.set(id, e);
  }
  return [...best.values()];
}

function compareVersions(a: LedgerEntry, b: LedgerEntry): number {
  const sa = a.sequencer.padStart(32, "0");
  const sb = b.sequencer.padStart(32, "0");
  if (sa !== sb) return sa < sb ? -1 : 1;
  if (a.deliveredAt !== b.deliveredAt) return a.deliveredAt < b.deliveredAt ? -1 : 1;
  return a.fileId < b.fileId ? -1 : a.fileId > b.fileId ? 1 : 0;
}

export function capabilitiesOf(files: readonly LedgerEntry[]): Capabilities {
  const entries = files.flatMap((f) => f.entries.filter((e) => e.rowsAccepted > 0));
  const has = (t: EntryStats["template"]) => entries.some((e) => e.template === t);
  return {
    points: has("points"),
    eventName: entries.some((e) => e.template === "points" && e.columns.includes("event_name")),
    redemptionSummary: has("points_redemption_summary"),
    members: has("members"),
    rewards: has("rewards"),
  };
}

/** Periods to aggregate: the given ones, or every dirty period. */
export async function dirtyPeriods(ledger: LedgerStore): Promise<string[]> {
  return (await ledger.listPeriods())
    .filter((p) => p.dirtySince !== null)
    .map((p) => p.period)
    .sort();
}

export async function aggregatePeriods(
  deps: AggregateDeps,
  periods: readonly string[],
): Promise<PublishedReport[]> {
  const { ledger, settings, log } = deps;
  if (periods.length === 0) return [];
  const startedAt = deps.now().toISOString();
  const all = await ledger.list();
  const files = currentFiles(all);
  const capabilities = capabilitiesOf(files);
  const groups = await deps.membership.listGroupMetas();
  const memberships: Membership[] = [];
  for await (const m of deps.membership.listAllMemberships()) memberships.push(m);
  const attribution = buildAttributionIndex(memberships, settings.calendar.timeZone);
  const members = await readMembers(deps, files);
  const today = settings.calendar.dateOf(deps.now().getTime());
  const dataQuality = dataQualityRows(all);
  const syncedAt = groups.reduce((m, g) => (g.syncedAt > m ? g.syncedAt : m), "");
  const knownPeriods = new Set(
    files.flatMap((f) => f.staged.filter((s) => s.dataset !== "members").map((s) => s.period)),
  );

  const published: PublishedReport[] = [];
  for (const period of [...periods].sort()) {
    const runId = newRunId(deps.now());
    const agg = new PeriodAggregator(period, attribution);
    const inputs = files.filter((f) => f.staged.some((s) => s.period === period && s.dataset !== "members"));
    for (let part = 0; part < settings.partitions; part++) {
      for (const [dataset, add] of [
        ["points", (r: string[]) => agg.addPoints(r)],
        ["points_redemption_summary", (r: string[]) => agg.addRedemption(r)],
        ["rewards", (r: string[]) => agg.addReward(r)],
      ] as const) {
        const up = new Upserter();
        for (const f of inputs) {
          for (const s of f.staged) {
            if (s.dataset !== dataset || s.period !== period || s.part !== part) continue;
            const deliveredAt = Date.parse(f.deliveredAt);
            const versionIdx = dataset === "points" ? 7 : dataset === "rewards" ? 4 : 5;
            await readStaged(deps, s.key, (row) =>
              up.add(row[0] ?? "", Number(row[versionIdx] ?? 0), deliveredAt, f.fileId, row),
            );
          }
        }
        for (const row of up.values()) add(row);
      }
    }
    const report = agg.finish({ groups, memberships, members, capabilities, today });
    if (!knownPeriods.has(period)) {
      log.warn("period has no accepted Points or Redemption Summary rows; nothing published", { period });
      continue;
    }
    const prefix = `reports/period=${period}/run=${runId}`;
    const meta = {
      contract: "v1",
      period,
      runId,
      generatedAt: deps.now().toISOString(),
      membershipSyncedAt: syncedAt,
    };
    const outputs: [string, string, string, number][] = [
      [
        "group_summary.csv",
        renderCsv(GROUP_SUMMARY_COLUMNS, report.groupSummary),
        "text/csv; charset=utf-8",
        report.groupSummary.length,
      ],
      [
        "group_summary.json",
        renderJson(meta, GROUP_SUMMARY_COLUMNS, report.groupSummary),
        "application/json",
        report.groupSummary.length,
      ],
      [
        "group_members.csv",
        renderCsv(GROUP_MEMBERS_COLUMNS, report.groupMembers),
        "text/csv; charset=utf-8",
        report.groupMembers.length,
      ],
      [
        "unattributed_members.csv",
        renderCsv(UNATTRIBUTED_COLUMNS, report.unattributed),
        "text/csv; charset=utf-8",
        report.unattributed.length,
      ],
      [
        "data_quality.csv",
        renderCsv(DATA_QUALITY_COLUMNS, dataQuality),
        "text/csv; charset=utf-8",
        dataQuality.length,
      ],
    ];
    const written: PublishedReport["files"] = [];
    for (const [name, body, type, rows] of outputs) {
      const key = `${prefix}/${name}`;
      await deps.objects.put(settings.reportsBucket, key, body, type);
      written.push({ key, rows, sha256: createHash("sha256").update(body).digest("hex") });
    }
    const manifest = {
      ...meta,
      files: written,
      inputFiles: inputs.map((f) => f.fileId).sort(),
      membersFiles: files
        .filter((f) => f.staged.some((s) => s.dataset === "members"))
        .map((f) => f.fileId)
        .sort(),
    };
    const manifestBody = `${JSON.stringify(manifest, null, 1)}\n`;
    await deps.objects.put(
      settings.reportsBucket,
      `${prefix}/manifest.json`,
      manifestBody,
      "application/json",
    );
    // The switch: one PUT each, so a reader sees the old run or the new one.
    const manifestKey = `reports/period=${period}/manifest.json`;
    await deps.objects.put(settings.reportsBucket, manifestKey, manifestBody, "application/json");
    await ledger.markReported(period, runId, startedAt, deps.now().toISOString());
    published.push({ period, runId, manifestKey, files: written, groups: report.groupSummary.length });
    log.info("report published", {
      period,
      runId,
      groups: report.groupSummary.length,
      inputFiles: inputs.length,
    });
  }

  // reports/latest/ follows the newest period that has a report.
  const newest = [...knownPeriods].sort().at(-1);
  const latest = published.find((p) => p.period === newest);
  if (latest) {
    const body = await deps.objects.getText(settings.reportsBucket, latest.manifestKey);
    if (body !== null)
      await deps.objects.put(
        settings.reportsBucket,
        "reports/latest/manifest.json",
        body,
        "application/json",
      );
  }
  return published;
}

function newRunId(now: Date): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z")}-${randomBytes(3).toString("hex")}`;
}

async function readStaged(deps: AggregateDeps, key: string, onRow: (row: string[]) => void): Promise<void> {
  const body = await deps.objects.get(deps.settings.stagingBucket, key);
  let header = true;
  let failure: Error | null = null;
  const parser = new CsvParser(
    {
      record(fields) {
        if (header) header = false;
        else onRow(fields);
      },
      error(err) {
        failure ??= new Error(`corrupt staged object ${key}: ${err.code} at line ${err.line}`);
      },
    },
    { maxFieldBytes: 1 << 20, maxRecordBytes: 1 << 22 },
  );
  try {
    for await (const entry of unpack(body.body, { name: key })) {
      for await (const chunk of entry.chunks) parser.push(chunk);
    }
    parser.end();
  } catch (e) {
    body.destroy();
    throw e;
  }
  if (failure) throw failure;
}

/** Newest Members snapshot row per user over every current Members file. */
async function readMembers(
  deps: AggregateDeps,
  files: readonly LedgerEntry[],
): Promise<Map<string, string[]>> {
  const up = new Upserter();
  for (const f of files) {
    const deliveredAt = Date.parse(f.deliveredAt);
    for (const s of f.staged) {
      if (s.dataset !== "members") continue;
      await readStaged(deps, s.key, (row) =>
        up.add(row[0] ?? "", Number(row[5] ?? 0), deliveredAt, f.fileId, row),
      );
    }
  }
  const out = new Map<string, string[]>();
  for (const row of up.values()) out.set(row[0] ?? "", row);
  return out;
}

function dataQualityRows(
  entries: readonly LedgerEntry[],
): Record<(typeof DATA_QUALITY_COLUMNS)[number], string>[] {
  const rows: Record<(typeof DATA_QUALITY_COLUMNS)[number], string>[] = [];
  const sorted = [...entries].sort((a, b) =>
    a.deliveredAt < b.deliveredAt ? -1 : a.deliveredAt > b.deliveredAt ? 1 : 0,
  );
  for (const f of sorted) {
    if (f.entries.length === 0) {
      rows.push({
        file: f.sourceKey,
        template: "",
        rows_read: "0",
        rows_accepted: "0",
        rows_rejected: "0",
        first_reject_reason: "",
        file_status: f.status,
        error: f.reason ?? "",
      });
      continue;
    }
    for (const e of f.entries) {
      rows.push({
        file: e.name,
        template: e.template ?? "",
        rows_read: String(e.rowsRead),
        rows_accepted: String(e.rowsAccepted),
        rows_rejected: String(e.rowsRejected),
        first_reject_reason: e.firstRejectReason ?? "",
        file_status: f.status,
        error: e.error ?? f.reason ?? "",
      });
    }
  }
  return rows;
}
