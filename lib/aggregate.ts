/**
 * Aggregate staged rows + membership into the group reports of each period, and publish them atomically:
 * every file is written under a run id, then the period manifest switches to the run, then
 * `reports/latest/manifest.json` points at the newest period's run. Readers that follow a manifest never
 * see a mix of two runs; `reports/latest/` holds only that manifest (copies of the files there could not
 * be switched atomically), and the CLI and README tell readers to go through it.
 *
 * Runs are serialized by a lock in the table (runAggregation), and a period's dirty mark is cleared only
 * when no file was accepted after the run read the period state, so a file accepted during a run is in
 * the next one. Superseded runs are deleted REPORT_RETENTION_DAYS after they were superseded.
 */

import { createHash, randomBytes } from "node:crypto";
import type { EntryStats, LedgerEntry, LedgerStore } from "./adapters/ledger-store.ts";
import type { S3Objects } from "./adapters/s3-objects.ts";
import {
  type AggregationPlan,
  aggregateParts,
  linkedPeriods,
  type PartResult,
  passesOf,
  readStaged,
  runParts,
} from "./aggregate-parts.ts";
import {
  type Capabilities,
  GROUP_MEMBERS_COLUMNS,
  GROUP_SUMMARY_COLUMNS,
  type GroupSummaryRow,
  PeriodAggregator,
  UNATTRIBUTED_COLUMNS,
} from "./domain/aggregate.ts";
import { type AttributionIndex, buildAttributionIndex } from "./domain/attribution.ts";
import type { ZonedCalendar } from "./domain/dates.ts";
import { type MonthTotals, renderHtmlReport, sumDecimals } from "./domain/html-report.ts";
import type { GroupMeta, Membership } from "./domain/membership.ts";
import { versionColumn } from "./domain/normalize.ts";
import { renderCsv, renderJson } from "./domain/report.ts";
import { Upserter } from "./domain/upsert.ts";
import type { Log } from "./logger.ts";

export interface MembershipReader {
  listGroupMetas(): Promise<GroupMeta[]>;
  listAllMemberships(): AsyncIterable<Membership>;
}

export type ReportObjects = Pick<S3Objects, "get" | "getText" | "put" | "list" | "delete">;
export type AggregateLedger = Pick<
  LedgerStore,
  | "get"
  | "list"
  | "listPeriods"
  | "getPeriod"
  | "markReported"
  | "acquireAggregateLock"
  | "releaseAggregateLock"
>;

export interface AggregateSettings {
  stagingBucket: string;
  reportsBucket: string;
  partitions: number;
  calendar: ZonedCalendar;
  /** Superseded runs are deleted this many days after they were superseded. Default 30. */
  retentionDays?: number;
  /** Upsert memory bound: a part with more staged rows (of one dataset) is read in several passes. Default 1,000,000. */
  maxRowsPerPass?: number;
  /** Lease of the aggregation lock, renewed before each period. Default 960 s (Lambda's 900 s + margin). */
  lockTtlSeconds?: number;
}

/**
 * Runs the parts somewhere else, one invocation each (functions/aggregate-part.ts), when a run reads at
 * least `minRows` staged rows: the plan is written once, parts run `concurrency` at a time.
 */
export interface PartFanout {
  minRows: number;
  concurrency: number;
  open(
    plan: AggregationPlan,
    attribution: AttributionIndex,
  ): Promise<{ run(part: number, periods: readonly string[]): Promise<PartResult>; close(): Promise<void> }>;
}

export interface AggregateDeps {
  objects: ReportObjects;
  ledger: AggregateLedger;
  membership: MembershipReader;
  settings: AggregateSettings;
  now: () => Date;
  log: Log;
  /** Progress of long work (CLI): one line per step. */
  progress?: (line: string) => void;
  /** Off (undefined): every part runs in this process, one after another. */
  fanout?: PartFanout;
}

export interface PublishedFile {
  key: string;
  name: string;
  rows: number;
  bytes: number;
  sha256: string;
  contentType: string;
}

export interface PublishedReport {
  period: string;
  runId: string;
  manifestKey: string;
  files: PublishedFile[];
  groups: number;
}

/** The manifest of one run (`reports/period=P/run=R/manifest.json`, copied to the switch keys). */
export interface ReportManifest {
  contract: "v1";
  period: string;
  runId: string;
  generatedAt: string;
  membershipSyncedAt: string;
  files: PublishedFile[];
  /** Ledger ids of the Points / Redemption Summary / rewards files with rows in the period. */
  inputFiles: string[];
  /** Ledger ids of the Members files whose newest snapshot fed the members_* figures. */
  membersFiles: string[];
  /** Period totals over all groups (exact decimals; empty when the exports cannot supply them). */
  totals?: PeriodTotals;
}

export type PeriodTotals = Pick<
  GroupSummaryRow,
  "points_awarded" | "points_redeemed" | "group_wallet_redemptions" | "group_wallet_points_redeemed"
>;

function totalsOf(rows: readonly GroupSummaryRow[]): PeriodTotals {
  const sum = (c: keyof PeriodTotals) => {
    const v = rows.map((r) => r[c]);
    return v.length > 0 && v.every((x) => x === "") ? "" : sumDecimals(v);
  };
  return {
    points_awarded: sum("points_awarded"),
    points_redeemed: sum("points_redeemed"),
    group_wallet_redemptions: sum("group_wallet_redemptions"),
    group_wallet_points_redeemed: sum("group_wallet_points_redeemed"),
  };
}

/** Totals of the 11 periods before `period` from their current manifests (this run's first). */
async function historyBefore(
  deps: AggregateDeps,
  period: string,
  thisRun: ReadonlyMap<string, PeriodTotals>,
): Promise<MonthTotals[]> {
  const [y = 0, m = 1] = period.split("-").map(Number);
  const out: MonthTotals[] = [];
  for (let i = 11; i >= 1; i--) {
    const d = new Date(Date.UTC(y, m - 1 - i, 1));
    const p = `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
    let t = thisRun.get(p);
    if (!t) {
      const text = await deps.objects.getText(deps.settings.reportsBucket, periodManifestKey(p));
      if (text === null) continue;
      try {
        t = (JSON.parse(text) as { totals?: PeriodTotals }).totals;
      } catch {
        t = undefined;
      }
    }
    if (t)
      out.push({
        period: p,
        redemptions: t.group_wallet_redemptions,
        points: t.group_wallet_points_redeemed,
      });
  }
  return out;
}

export const LATEST_MANIFEST_KEY = "reports/latest/manifest.json";
export const periodManifestKey = (period: string) => `reports/period=${period}/manifest.json`;

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
export async function dirtyPeriods(ledger: Pick<LedgerStore, "listPeriods">): Promise<string[]> {
  return (await ledger.listPeriods())
    .filter((p) => p.dirtySince !== null)
    .map((p) => p.period)
    .sort();
}

export async function aggregatePeriods(
  deps: AggregateDeps & { renewLock?: () => Promise<void> },
  periods: readonly string[],
): Promise<PublishedReport[]> {
  const { ledger, settings, log } = deps;
  if (periods.length === 0) return [];
  const startedAt = deps.now().toISOString();
  // Period states first (consistent reads), then the ledger: every file marked before this point is
  // found, by id when the ledger index has not caught up yet.
  const states = new Map<string, { version: number | undefined; fileIds: string[] }>();
  for (const p of periods) {
    const st = await ledger.getPeriod(p);
    states.set(p, { version: st?.dirtyVersion, fileIds: st?.fileIds ?? [] });
  }
  const byId = new Map((await ledger.list()).map((e) => [e.fileId, e]));
  for (const st of states.values()) {
    for (const id of st.fileIds) {
      if (byId.get(id)?.status === "COMMITTED") continue;
      const fresh = await ledger.get(id);
      if (fresh) byId.set(id, fresh);
    }
  }
  const all = [...byId.values()];
  const files = currentFiles(all);
  const capabilities = capabilitiesOf(files);
  const say = deps.progress ?? (() => undefined);
  const groups = await deps.membership.listGroupMetas();
  const memberships: Membership[] = [];
  for await (const m of deps.membership.listAllMemberships()) memberships.push(m);
  const attribution = buildAttributionIndex(memberships, settings.calendar.timeZone);
  say(`membership: ${groups.length} groups, ${memberships.length} memberships`);
  const members = await readMembers(deps, files);
  say(`members snapshot: ${members.size} members`);
  const today = settings.calendar.dateOf(deps.now().getTime());
  const dataQuality = dataQualityRows(all);
  let syncedAt = "";
  for (const g of groups) if (g.syncedAt > syncedAt) syncedAt = g.syncedAt;
  const knownPeriods = new Set(
    files.flatMap((f) => f.staged.filter((s) => s.dataset !== "members").map((s) => s.period)),
  );

  // Map: every part upserts its keys over all periods; reduce: merge the wanted periods' aggregates.
  // Periods that shared a key with a wanted one (a row moved month) are aggregated too, in a second
  // pass over the parts when the first did not want them.
  const plan: AggregationPlan = {
    stagingBucket: settings.stagingBucket,
    parts: runParts([
      settings.partitions,
      ...files.flatMap((f) => f.staged.map((s) => s.parts ?? settings.partitions)),
    ]),
    maxRowsPerPass: settings.maxRowsPerPass ?? 1_000_000,
    timeZone: settings.calendar.timeZone,
    files: files.map((f) => ({
      fileId: f.fileId,
      deliveredAt: f.deliveredAt,
      staged: f.staged.filter((s) => s.dataset !== "members"),
    })),
    memberships,
  };
  const aggregators = new Map<string, PeriodAggregator>();
  const links: [string, string][] = [];
  const requested = new Set(periods);
  await forEachPart(deps, plan, attribution, [...requested], aggregators, (r) => links.push(...r.links));
  const affected = linkedPeriods(requested, links);
  const extra = [...affected].filter((p) => !requested.has(p));
  if (extra.length > 0) {
    log.info("rows moved between periods; those periods are re-published too", { periods: extra });
    for (const p of extra) {
      const st = await ledger.getPeriod(p);
      states.set(p, { version: st?.dirtyVersion, fileIds: st?.fileIds ?? [] });
    }
    await forEachPart(deps, plan, attribution, extra, aggregators, () => undefined);
  }

  const published: PublishedReport[] = [];
  const totalsThisRun = new Map<string, PeriodTotals>();
  const sortedPeriods = [...affected].sort();
  for (const [index, period] of sortedPeriods.entries()) {
    say(`period ${period} (${index + 1}/${sortedPeriods.length})`);
    await deps.renewLock?.();
    const runId = newRunId(deps.now());
    const agg = aggregators.get(period) ?? new PeriodAggregator(period, attribution);
    const inputs = files.filter((f) => f.staged.some((s) => s.period === period && s.dataset !== "members"));
    const report = agg.finish({ groups, memberships, members, capabilities, today });
    if (!knownPeriods.has(period)) {
      log.warn("period has no accepted Points or Redemption Summary rows; nothing published", { period });
      await ledger.markReported(
        period,
        "",
        startedAt,
        deps.now().toISOString(),
        states.get(period)?.version ?? 0,
      );
      continue;
    }
    const prefix = `reports/period=${period}/run=${runId}`;
    const meta = {
      contract: "v1" as const,
      period,
      runId,
      generatedAt: deps.now().toISOString(),
      membershipSyncedAt: syncedAt,
    };
    const totals = totalsOf(report.groupSummary);
    totalsThisRun.set(period, totals);
    const history = await historyBefore(deps, period, totalsThisRun);
    // Rendered one at a time (a thunk each), written, then dropped: memory holds one body at a time.
    const outputs: [string, () => string, string, number][] = [
      [
        "group_summary.csv",
        () => renderCsv(GROUP_SUMMARY_COLUMNS, report.groupSummary),
        "text/csv; charset=utf-8",
        report.groupSummary.length,
      ],
      [
        "group_summary.json",
        () => renderJson(meta, GROUP_SUMMARY_COLUMNS, report.groupSummary),
        "application/json",
        report.groupSummary.length,
      ],
      [
        "group_members.csv",
        () => renderCsv(GROUP_MEMBERS_COLUMNS, report.groupMembers),
        "text/csv; charset=utf-8",
        report.groupMembers.length,
      ],
      [
        "unattributed_members.csv",
        () => renderCsv(UNATTRIBUTED_COLUMNS, report.unattributed),
        "text/csv; charset=utf-8",
        report.unattributed.length,
      ],
      [
        "data_quality.csv",
        () => renderCsv(DATA_QUALITY_COLUMNS, dataQuality),
        "text/csv; charset=utf-8",
        dataQuality.length,
      ],
      [
        "report.html",
        () =>
          renderHtmlReport({
            period,
            runId,
            generatedAt: meta.generatedAt,
            membershipSyncedAt: syncedAt,
            groupSummary: report.groupSummary,
            walletByDay: report.walletByDay,
            history: [
              ...history,
              {
                period,
                redemptions: totals.group_wallet_redemptions,
                points: totals.group_wallet_points_redeemed,
              },
            ],
          }),
        "text/html; charset=utf-8",
        report.groupSummary.length,
      ],
    ];
    const written: PublishedFile[] = [];
    for (const [name, render, type, rows] of outputs) {
      const key = `${prefix}/${name}`;
      const bytes = Buffer.from(render(), "utf-8");
      await deps.objects.put(settings.reportsBucket, key, bytes, type);
      written.push({
        key,
        name,
        rows,
        bytes: bytes.byteLength,
        sha256: createHash("sha256").update(bytes).digest("hex"),
        contentType: type,
      });
    }
    const manifest: ReportManifest = {
      ...meta,
      files: written,
      inputFiles: inputs.map((f) => f.fileId).sort(),
      membersFiles: files
        .filter((f) => f.staged.some((s) => s.dataset === "members"))
        .map((f) => f.fileId)
        .sort(),
      totals,
    };
    const manifestBody = `${JSON.stringify(manifest, null, 1)}\n`;
    await deps.objects.put(
      settings.reportsBucket,
      `${prefix}/manifest.json`,
      manifestBody,
      "application/json",
    );
    // The switch: one PUT each, so a reader sees the old run or the new one.
    const manifestKey = periodManifestKey(period);
    await deps.objects.put(settings.reportsBucket, manifestKey, manifestBody, "application/json");
    await ledger.markReported(
      period,
      runId,
      startedAt,
      deps.now().toISOString(),
      states.get(period)?.version ?? 0,
    );
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
      await deps.objects.put(settings.reportsBucket, LATEST_MANIFEST_KEY, body, "application/json");
  }
  for (const p of published) await expireRuns(deps, p.period);
  return published;
}

/**
 * Runs every part for `periods` into `aggregators` (in process, or fanned out when the run is big enough,
 * merging each part's aggregates as it finishes); `onResult` sees each part's result (links, counts).
 */
async function forEachPart(
  deps: AggregateDeps & { renewLock?: () => Promise<void> },
  plan: AggregationPlan,
  attribution: AttributionIndex,
  periods: readonly string[],
  aggregators: Map<string, PeriodAggregator>,
  onResult: (r: PartResult) => void,
): Promise<void> {
  const { fanout, log } = deps;
  const say = deps.progress ?? (() => undefined);
  const parts = Array.from({ length: plan.parts }, (_, i) => i);
  const report = (r: PartResult) => {
    const first = (r.parts[0] ?? 0) + 1;
    const last = (r.parts.at(-1) ?? 0) + 1;
    say(`  ${first === last ? `part ${first}` : `parts ${first}-${last}`}/${plan.parts}: ${r.rows} rows`);
    if (r.missing.length > 0)
      log.warn("staged objects of other periods are gone (expired); skipped", {
        parts: r.parts,
        objects: r.missing.length,
        first: r.missing[0],
      });
    onResult(r);
  };
  const stagedRows = plan.files.reduce((n, f) => n + f.staged.reduce((m, s) => m + s.rows, 0), 0);
  if (!fanout || stagedRows < fanout.minRows || parts.length < 2) {
    const wanted = new Set(periods);
    const renew = async () => {
      await deps.renewLock?.();
    };
    for (const pass of passesOf(plan))
      report(await aggregateParts(deps.objects, plan, attribution, pass, wanted, aggregators, renew));
    return;
  }
  log.info("aggregation fans out", { parts: parts.length, stagedRows, concurrency: fanout.concurrency });
  const session = await fanout.open(plan, attribution);
  try {
    const queue = [...parts];
    const worker = async () => {
      for (let part = queue.shift(); part !== undefined; part = queue.shift()) {
        try {
          const r = await session.run(part, periods);
          mergeInto(aggregators, r);
          report(r);
          await deps.renewLock?.();
        } catch (e) {
          queue.length = 0; // no new parts once one failed: the whole run fails and is retried
          throw e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(fanout.concurrency, parts.length) }, worker));
  } finally {
    await session.close();
  }
}

function mergeInto(into: Map<string, PeriodAggregator>, r: PartResult): void {
  for (const [p, agg] of r.aggregators) {
    const cur = into.get(p);
    if (cur) cur.merge(agg);
    else into.set(p, agg);
  }
}

const RUN_ID = /^(\d{8}T\d{6}Z)-[0-9a-f]+$/;

/** Epoch ms of a run id's timestamp (`YYYYMMDDTHHMMSSZ-xxxxxx`), or null. */
export function runIdTime(runId: string): number | null {
  const m = RUN_ID.exec(runId)?.[1];
  if (!m) return null;
  const iso = `${m.slice(0, 4)}-${m.slice(4, 6)}-${m.slice(6, 8)}T${m.slice(9, 11)}:${m.slice(11, 13)}:${m.slice(13, 15)}Z`;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/**
 * Runs of a period to delete: every run superseded (by the next newer run) more than `retentionDays`
 * ago, except the runs a manifest points to. Pure, for tests.
 */
export function expiredRuns(
  runIds: readonly string[],
  pinned: ReadonlySet<string>,
  nowMs: number,
  retentionDays: number,
): string[] {
  const timed = runIds
    .map((id) => ({ id, t: runIdTime(id) }))
    .filter((r): r is { id: string; t: number } => r.t !== null)
    .sort((a, b) => a.t - b.t || (a.id < b.id ? -1 : 1));
  const limit = nowMs - retentionDays * 86_400_000;
  const out: string[] = [];
  for (let i = 0; i + 1 < timed.length; i++) {
    const run = timed[i];
    const next = timed[i + 1];
    if (run && next && next.t < limit && !pinned.has(run.id)) out.push(run.id);
  }
  return out;
}

/** Delete the period's runs that no manifest points to and that were superseded long enough ago. */
async function expireRuns(deps: AggregateDeps, period: string): Promise<void> {
  const { settings, objects, log } = deps;
  const bucket = settings.reportsBucket;
  const prefix = `reports/period=${period}/run=`;
  const byRun = new Map<string, string[]>();
  for await (const o of objects.list(bucket, prefix)) {
    const runId = o.key.slice(prefix.length).split("/")[0] ?? "";
    const keys = byRun.get(runId) ?? [];
    keys.push(o.key);
    byRun.set(runId, keys);
  }
  const pinned = new Set<string>();
  for (const key of [periodManifestKey(period), LATEST_MANIFEST_KEY]) {
    const text = await objects.getText(bucket, key);
    if (text === null) continue;
    try {
      const runId = (JSON.parse(text) as { runId?: unknown }).runId;
      if (typeof runId === "string") pinned.add(runId);
    } catch {
      // an unreadable manifest pins nothing more
    }
  }
  const expired = expiredRuns([...byRun.keys()], pinned, deps.now().getTime(), settings.retentionDays ?? 30);
  let deleted = 0;
  for (const runId of expired) {
    for (const key of byRun.get(runId) ?? []) {
      await objects.delete(bucket, key);
      deleted++;
    }
  }
  if (expired.length > 0)
    log.info("expired report runs deleted", { period, runs: expired.length, objects: deleted });
}

export type AggregationRequest = { periods: readonly string[] } | { dirty: true };

export interface AggregationOutcome {
  /** busy: another run held the lock (it re-checks dirty periods before it ends). */
  status: "done" | "busy";
  published: PublishedReport[];
  rounds: number;
}

/**
 * One aggregation under the lock. For dirty periods it repeats while periods are (again) dirty, and
 * checks once more after releasing the lock: a run refused the lock meanwhile relies on that, so a file
 * accepted before any run started is always in a report. It stops early only when `remainingMs` says
 * another round would not fit (Lambda's time left), or after `maxRounds` (default 50); the schedule
 * then picks up what is still dirty.
 */
export async function runAggregation(
  deps: AggregateDeps,
  request: AggregationRequest,
  options: { maxRounds?: number; owner?: string; remainingMs?: () => number } = {},
): Promise<AggregationOutcome> {
  const { ledger, log } = deps;
  const owner = options.owner ?? `agg-${randomBytes(6).toString("hex")}`;
  const ttl = deps.settings.lockTtlSeconds ?? 960;
  const maxRounds = options.maxRounds ?? 50;
  const published: PublishedReport[] = [];
  let rounds = 0;
  let longestRoundMs = 0;
  const timeLeft = () =>
    options.remainingMs === undefined || options.remainingMs() > longestRoundMs * 1.5 + 30_000;
  const more = () => rounds < maxRounds && timeLeft();
  for (;;) {
    if (!(await ledger.acquireAggregateLock(owner, deps.now().getTime(), ttl))) {
      log.info("aggregation skipped: another run holds the lock", { owner });
      return { status: rounds === 0 ? "busy" : "done", published, rounds };
    }
    const renewLock = async () => {
      if (!(await ledger.acquireAggregateLock(owner, deps.now().getTime(), ttl)))
        throw new Error("aggregation lock lost (lease expired and taken by another run)");
    };
    try {
      do {
        const periods = "periods" in request ? [...request.periods] : await dirtyPeriods(ledger);
        if (periods.length === 0) break;
        rounds++;
        log.info("aggregation round", { owner, round: rounds, periods });
        const t0 = Date.now();
        published.push(...(await aggregatePeriods({ ...deps, renewLock }, periods)));
        longestRoundMs = Math.max(longestRoundMs, Date.now() - t0);
        if ("periods" in request) break;
      } while (more());
    } finally {
      await ledger.releaseAggregateLock(owner);
    }
    if ("periods" in request) break;
    if ((await dirtyPeriods(ledger)).length === 0) break;
    if (!more()) {
      log.warn("aggregation stops with periods still dirty; the next run or schedule takes them", {
        owner,
        rounds,
      });
      break;
    }
  }
  return { status: "done", published, rounds };
}

function newRunId(now: Date): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z")}-${randomBytes(3).toString("hex")}`;
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
      await readStaged(deps.objects, deps.settings.stagingBucket, s.key, (row) =>
        up.add(row[0] ?? "", Number(row[versionColumn("members")] ?? 0), deliveredAt, f.fileId, row),
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
