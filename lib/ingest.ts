/**
 * Ingest one delivered export object: unpack, parse, validate and normalize every row, stage accepted
 * rows by (dataset, period, key-hash part), write every rejected row to `rejects/<fileId>.csv`, and record
 * the counts in the ledger. Staged objects count only once the ledger entry is COMMITTED, so a crash
 * midway leaves nothing the aggregation would read; a retry rewrites the same keys (same fileId).
 */

import { createHash } from "node:crypto";
import type { EntryStats, LedgerEntry, LedgerStore, StagedObject } from "./adapters/ledger-store.ts";
import type { ObjectBody } from "./adapters/s3-objects.ts";
import { isPreconditionFailed, type S3Objects } from "./adapters/s3-objects.ts";
import { SpillDir, type SpillFile } from "./adapters/spill.ts";
import { UnpackError, unpack } from "./adapters/unpack.ts";
import { type CsvError, CsvParser, encodeCsvRecord } from "./domain/csv.ts";
import type { ZonedCalendar } from "./domain/dates.ts";
import { createNormalizer, isReject, type Normalizer, STAGED_COLUMNS } from "./domain/normalize.ts";
import { partOf, stagedKey } from "./domain/partition.ts";
import { type ColumnMap, describeHeader, detectTemplate, type TemplateName } from "./domain/templates.ts";
import type { Log } from "./logger.ts";

export interface DeliveredObject {
  bucket: string;
  /** Decoded key. */
  key: string;
  size: number;
  eTag: string;
  sequencer: string;
  /** When S3 reported the object created (ISO). */
  eventTime: string;
}

export interface IngestSettings {
  stagingBucket: string;
  partitions: number;
  calendar: ZonedCalendar;
  columnMap: ColumnMap;
  maxFieldBytes: number;
  maxRecordBytes: number;
  numberLocale?: { group: string; decimal: string } | undefined;
  tmpDir?: string | undefined;
}

/** The object store as ingestion uses it (S3Objects in Lambda; LocalObjects in tests and benches). */
export type IngestObjects = Pick<S3Objects, "get" | "putFile">;
/** The ledger as ingestion uses it (LedgerStore in Lambda; MemoryLedger in tests and benches). */
export type IngestLedger = Pick<LedgerStore, "get" | "put" | "markDirty" | "listPeriods">;

export interface IngestDeps {
  objects: IngestObjects;
  ledger: IngestLedger;
  settings: IngestSettings;
  now: () => Date;
  log: Log;
}

export type IngestOutcome =
  | {
      status: "COMMITTED" | "REJECTED";
      fileId: string;
      /** Why a file was REJECTED as a whole; null (or absent) when COMMITTED. */
      reason?: string | null;
      rowsRead: number;
      rowsAccepted: number;
      rowsRejected: number;
      periods: string[];
    }
  | { status: "DUPLICATE" | "SKIPPED"; fileId: string; reason: string };

export const EXPORTS_PREFIX = "exports/";

export class IngestError extends Error {
  constructor(
    readonly code: "KEY_OUTSIDE_EXPORTS",
    message: string,
  ) {
    super(message);
    this.name = "IngestError";
  }
}

/** Deterministic id of one version of one object: the same delivery always maps to the same staged keys. */
export function fileIdOf(bucket: string, key: string, eTag: string): string {
  return createHash("sha256").update(`${bucket}\n${key}\n${eTag}`).digest("hex").slice(0, 32);
}

const REJECT_HEADER = encodeCsvRecord(["file", "line", "field", "reason", "raw"]);

export async function ingestObject(deps: IngestDeps, obj: DeliveredObject): Promise<IngestOutcome> {
  const { ledger, settings, log } = deps;
  if (!obj.key.startsWith(EXPORTS_PREFIX)) {
    throw new IngestError(
      "KEY_OUTSIDE_EXPORTS",
      `refusing s3://${obj.bucket}/${obj.key}: only ${EXPORTS_PREFIX} is ingested`,
    );
  }
  const fileId = fileIdOf(obj.bucket, obj.key, obj.eTag);
  const ctx = { fileId, key: obj.key, eTag: obj.eTag };
  const previous = await ledger.get(fileId);
  if (
    previous &&
    previous.status !== "PROCESSING" &&
    previous.status !== "FAILED" &&
    !headerRejected(previous)
  ) {
    log.info("duplicate delivery ignored", { ...ctx, status: previous.status });
    // A crash between the COMMITTED write and the dirty marks is retried as a duplicate: mark again.
    if (previous.status === "COMMITTED") await markPeriods(ledger, previous, deps.now().toISOString());
    return { status: "DUPLICATE", fileId, reason: `already ${previous.status}` };
  }
  const base: LedgerEntry = {
    fileId,
    bucket: obj.bucket,
    sourceKey: obj.key,
    eTag: obj.eTag,
    size: obj.size,
    sequencer: obj.sequencer,
    deliveredAt: obj.eventTime,
    status: "PROCESSING",
    reason: null,
    attempts: (previous?.attempts ?? 0) + 1,
    entries: [],
    staged: [],
    periods: [],
    rejectsKey: null,
    startedAt: deps.now().toISOString(),
    finishedAt: null,
  };

  const skip = obj.key.endsWith("/") ? "folder marker" : obj.size === 0 ? "empty object" : null;
  if (skip) {
    await ledger.put({ ...base, status: "SKIPPED", reason: skip, finishedAt: deps.now().toISOString() });
    log.info("object skipped", { ...ctx, reason: skip });
    return { status: "SKIPPED", fileId, reason: skip };
  }

  // Conditional: a concurrent delivery of this version may have committed it since the read above.
  if (!(await ledger.put(base, { unlessCommitted: true }))) {
    log.info("duplicate delivery ignored", { ...ctx, status: "COMMITTED" });
    return { status: "DUPLICATE", fileId, reason: "already COMMITTED" };
  }
  const spill = await SpillDir.create(settings.tmpDir);
  try {
    let body: ObjectBody;
    try {
      body = await deps.objects.get(obj.bucket, obj.key, obj.eTag || undefined);
    } catch (e) {
      if (!isPreconditionFailed(e)) throw e;
      // The key was overwritten after this event: its own event ingests the newer version. Final, not retried.
      const reason = "superseded: the key was overwritten after this event (If-Match failed)";
      await ledger.put({ ...base, status: "SKIPPED", reason, finishedAt: deps.now().toISOString() });
      log.info("object skipped", { ...ctx, reason });
      return { status: "SKIPPED", fileId, reason };
    }
    const result = await readAndStage(deps, obj, fileId, spill, body);
    const entry: LedgerEntry = { ...base, ...result, finishedAt: deps.now().toISOString() };
    const totals = sumEntries(result.entries);
    await ledger.put(entry);
    // Marked after the COMMITTED write, so that a run that sees the mark finds the file.
    if (result.status === "COMMITTED") await markPeriods(ledger, entry, entry.finishedAt ?? base.startedAt);
    const log_ = result.status === "COMMITTED" ? log.info.bind(log) : log.warn.bind(log);
    log_(result.status === "COMMITTED" ? "export ingested" : "export not ingested", {
      ...ctx,
      status: result.status,
      reason: result.reason,
      entries: result.entries.length,
      ...totals,
      periods: result.periods,
    });
    if (result.status === "SKIPPED") return { status: "SKIPPED", fileId, reason: result.reason ?? "" };
    return { status: result.status, fileId, reason: result.reason, ...totals, periods: result.periods };
  } catch (e) {
    // Never over a COMMITTED entry: a concurrent delivery of this version may have committed it.
    await ledger.put(
      { ...base, status: "FAILED", reason: errorText(e), finishedAt: deps.now().toISOString() },
      { unlessCommitted: true },
    );
    throw e;
  } finally {
    await spill.remove();
  }
}

/**
 * A file rejected for its header depends on the configuration (COLUMN_MAP): delivering the same version
 * again (e.g. a copy onto itself after the map was fixed) reads it again instead of calling it a duplicate.
 */
function headerRejected(e: LedgerEntry): boolean {
  return e.status === "REJECTED" && e.entries.some((x) => x.error !== null && x.template === null);
}

/**
 * Mark the periods of a committed file dirty. members_* figures of every period come from the newest
 * Members snapshot, so a Members delivery makes every known period dirty, not only those of its own rows
 * (it has none).
 */
async function markPeriods(ledger: IngestLedger, entry: LedgerEntry, at: string): Promise<void> {
  const dirty = new Set(entry.periods);
  if (entry.staged.some((s) => s.dataset === "members"))
    for (const p of await ledger.listPeriods()) dirty.add(p.period);
  if (dirty.size > 0) await ledger.markDirty([...dirty].sort(), at, entry.fileId);
}

function sumEntries(entries: EntryStats[]) {
  let rowsRead = 0;
  let rowsAccepted = 0;
  let rowsRejected = 0;
  for (const e of entries) {
    rowsRead += e.rowsRead;
    rowsAccepted += e.rowsAccepted;
    rowsRejected += e.rowsRejected;
  }
  return { rowsRead, rowsAccepted, rowsRejected };
}

function errorText(e: unknown): string {
  if (e instanceof Error) return `${(e as { code?: string }).code ?? e.name}: ${e.message}`.slice(0, 500);
  return "unknown error";
}

interface StageResult {
  status: "COMMITTED" | "REJECTED" | "SKIPPED";
  reason: string | null;
  entries: EntryStats[];
  staged: StagedObject[];
  periods: string[];
  rejectsKey: string | null;
}

async function readAndStage(
  deps: IngestDeps,
  obj: DeliveredObject,
  fileId: string,
  spill: SpillDir,
  body: ObjectBody,
): Promise<StageResult> {
  const { settings, objects } = deps;
  const sinks = new Map<string, { file: SpillFile; dataset: TemplateName; period: string; part: number }>();
  const entries: EntryStats[] = [];
  let rejects: SpillFile | null = null;
  const deliveredPeriod = settings.calendar.dateOf(Date.parse(obj.eventTime)).slice(0, 7);

  // Sinks by dataset and period, then by part: no per-row key string.
  const byPeriod = new Map<string, (SpillFile | undefined)[]>();
  let lastDataset = "";
  let lastPeriod = "";
  let lastParts: (SpillFile | undefined)[] = [];
  const sinkFor = (dataset: TemplateName, period: string, part: number): SpillFile => {
    if (period !== lastPeriod || dataset !== lastDataset) {
      const periodKey = `${dataset}|${period}`;
      let parts = byPeriod.get(periodKey);
      if (!parts) {
        parts = [];
        byPeriod.set(periodKey, parts);
      }
      lastDataset = dataset;
      lastPeriod = period;
      lastParts = parts;
    }
    let file = lastParts[part];
    if (!file) {
      file = spill.file(`${sinks.size}.csv.gz`, true);
      file.line(encodeCsvRecord(STAGED_COLUMNS[dataset]));
      file.rows = 0;
      lastParts[part] = file;
      sinks.set(`${dataset}|${period}|${part}`, { file, dataset, period, part });
    }
    return file;
  };
  const reject = (fileLabel: string, line: number, field: string, reason: string, raw: string): void => {
    if (!rejects) {
      rejects = spill.file("rejects.csv", false);
      rejects.line(REJECT_HEADER);
      rejects.rows = 0;
    }
    rejects.line(encodeCsvRecord([fileLabel, String(line), field, reason, raw]));
  };

  try {
    for await (const entry of unpack(body.body, { name: obj.key })) {
      const label = entry.packaging === "zip" ? `${obj.key}!${entry.name}` : obj.key;
      const stats: EntryStats = {
        name: label,
        template: null,
        rowsRead: 0,
        rowsAccepted: 0,
        rowsRejected: 0,
        firstRejectReason: null,
        error: null,
        columns: [],
      };
      entries.push(stats);
      let normalizer: Normalizer | null = null;
      let dataset: TemplateName | null = null;
      let headerSeen = false;
      const onReject = (line: number, field: string, reason: string, raw: string) => {
        stats.rowsRejected++;
        if (stats.firstRejectReason === null) stats.firstRejectReason = `line ${line}, ${field}: ${reason}`;
        reject(label, line, field, reason, raw);
      };
      const parser = new CsvParser(
        {
          record(fields, line) {
            if (!headerSeen) {
              headerSeen = true;
              const detected = detectTemplate(fields, settings.columnMap);
              if (!detected) {
                stats.error = `unknown header (no template matches): ${describeHeader(fields)}`;
                return;
              }
              dataset = detected.template.name;
              stats.template = dataset;
              if (detected.columns.has("event_name")) stats.columns.push("event_name");
              normalizer = createNormalizer(detected, fields, {
                calendar: settings.calendar,
                numberLocale: settings.numberLocale,
              });
              return;
            }
            stats.rowsRead++;
            if (stats.error !== null || normalizer === null || dataset === null) {
              stats.rowsRejected++;
              return;
            }
            const r = normalizer(fields);
            if (isReject(r)) {
              onReject(line, r.field, r.reason, encodeCsvRecord(fields));
              return;
            }
            sinkFor(dataset, r.period ?? deliveredPeriod, partOf(r.key, settings.partitions)).line(r.line);
            stats.rowsAccepted++;
          },
          error(err: CsvError, raw: string) {
            if (!headerSeen) {
              headerSeen = true;
              stats.error = `unreadable header: ${err.code} at line ${err.line}`;
              return;
            }
            stats.rowsRead++;
            if (stats.error !== null) {
              stats.rowsRejected++;
              return;
            }
            onReject(err.line, `(column ${err.column})`, `${err.code}: ${err.message}`, raw);
          },
        },
        { maxFieldBytes: settings.maxFieldBytes, maxRecordBytes: settings.maxRecordBytes },
      );
      for await (const chunk of entry.chunks) {
        parser.push(chunk);
        await drainAll(sinks.values(), rejects);
      }
      parser.end();
      if (!headerSeen) stats.error = null; // header-only or empty entry: 0 rows, nothing to say
    }
  } catch (e) {
    body.destroy();
    for (const s of sinks.values()) s.file.destroy();
    (rejects as SpillFile | null)?.destroy();
    if (e instanceof UnpackError) {
      // Nothing of the file is staged: rows read so far count as rejected, with the file's reason.
      const reason = `${e.code}: ${e.message}`;
      for (const stats of entries) {
        stats.rowsRejected = stats.rowsRead;
        stats.rowsAccepted = 0;
        stats.error ??= reason;
      }
      return {
        status: "REJECTED",
        reason,
        entries,
        staged: [],
        periods: [],
        rejectsKey: null,
      };
    }
    throw e;
  }

  const whole = wholeFileVerdict(entries);
  if (whole) {
    for (const s of sinks.values()) s.file.destroy();
    (rejects as SpillFile | null)?.destroy();
    return { ...whole, entries, staged: [], periods: [], rejectsKey: null };
  }

  // Upload staged parts and rejects, then (in the caller) commit the ledger.
  const staged: StagedObject[] = [];
  for (const s of sinks.values()) {
    await s.file.close();
    const key = stagedKey(s.dataset, s.period, s.part, fileId);
    await objects.putFile(settings.stagingBucket, key, s.file.path, "application/gzip");
    staged.push({
      key,
      dataset: s.dataset,
      period: s.period,
      part: s.part,
      rows: s.file.rows,
      parts: settings.partitions,
    });
  }
  let rejectsKey: string | null = null;
  const rj = rejects as SpillFile | null;
  if (rj) {
    await rj.close();
    rejectsKey = `rejects/${fileId}.csv`;
    await objects.putFile(settings.stagingBucket, rejectsKey, rj.path, "text/csv; charset=utf-8");
  }
  const periods = [...new Set(staged.filter((s) => s.dataset !== "members").map((s) => s.period))].sort();
  return { status: "COMMITTED", reason: null, entries, staged, periods, rejectsKey };
}

/**
 * A file that yields nothing to stage is not COMMITTED, so it never replaces a good earlier version of
 * its key: every entry rejected as a whole (unknown header...) -> REJECTED; no data rows at all (header
 * only, an archive without CSV entries) -> SKIPPED. Null when the file is to be committed.
 */
function wholeFileVerdict(
  entries: readonly EntryStats[],
): { status: "REJECTED" | "SKIPPED"; reason: string } | null {
  if (entries.length === 0) return { status: "SKIPPED", reason: "no CSV entry in the file" };
  const failed = entries.filter((e) => e.error !== null);
  if (failed.length === entries.length) {
    const first = failed[0]?.error ?? "";
    return {
      status: "REJECTED",
      reason: entries.length === 1 ? first : `every entry rejected; first: ${first}`,
    };
  }
  if (entries.every((e) => e.rowsRead === 0)) return { status: "SKIPPED", reason: "header only: 0 rows" };
  return null;
}

async function drainAll(sinks: Iterable<{ file: SpillFile }>, rejects: SpillFile | null): Promise<void> {
  for (const s of sinks) if (s.file.needsDrain) await s.file.drain();
  if (rejects?.needsDrain) await rejects.drain();
}
