/**
 * The map side of the aggregation: one key-hash part at a time. A part holds every version of its keys,
 * whatever their month (rows are staged by the hash of their key), so the upsert runs over all periods
 * at once and a re-sent row whose event date moved to another month replaces its old version there too
 * (invariant 2). Each part yields additive per-period aggregates plus the pairs of periods that shared a
 * key, so the periods a move touched are re-published together.
 *
 * The same code runs in process (as many parts per pass as fit AGGREGATE_MAX_ROWS_PER_PASS) and fanned
 * out, one invocation per part
 * (functions/aggregate-part.ts): the plan (current files, one membership snapshot) is written once and
 * every part reads that same snapshot, so both give the same reports.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { z } from "zod";
import { stagedObjectSchema } from "./adapters/ledger-store.ts";
import { membershipSchema } from "./adapters/membership-store.ts";
import { isNotFound, type S3Objects } from "./adapters/s3-objects.ts";
import { unpack } from "./adapters/unpack.ts";
import {
  PeriodAggregator,
  type PeriodState,
  type RowFacts,
  readFacts,
  type SummedDataset,
} from "./domain/aggregate.ts";
import { type AttributionIndex, buildAttributionIndex } from "./domain/attribution.ts";
import { CsvParser } from "./domain/csv.ts";
import { versionColumn } from "./domain/normalize.ts";
import { sliceOf } from "./domain/partition.ts";
import { StagedRows } from "./domain/upsert.ts";

export const PART_DATASETS = [
  "points",
  "points_redemption_summary",
  "rewards",
] as const satisfies readonly SummedDataset[];

const period = z.string().regex(/^\d{4}-\d{2}$/, "a period is YYYY-MM");

/** What every part of one aggregation reads (written once per run when fanned out). */
export const aggregationPlanSchema = z.object({
  stagingBucket: z.string().min(1),
  /** Parts of this run: the fewest any file was staged into (every file's count is a multiple of it). */
  parts: z.number().int().positive(),
  /** A part with more staged rows of a dataset is upserted in several passes, each over a slice of its keys. */
  maxRowsPerPass: z.number().int().positive(),
  timeZone: z.string().min(1),
  /** The newest committed version of each delivered file, with its staged Points/Redemption/reward objects. */
  files: z.array(
    z.object({ fileId: z.string(), deliveredAt: z.string(), staged: z.array(stagedObjectSchema) }),
  ),
  memberships: z.array(membershipSchema),
});
export type AggregationPlan = z.infer<typeof aggregationPlanSchema>;

/** One part's work when fanned out: where the plan is, which part, which periods, where the result goes. */
export const partJobSchema = z.object({
  bucket: z.string().min(1),
  planKey: z.string().min(1),
  part: z.number().int().nonnegative(),
  periods: z.array(period),
  resultKey: z.string().min(1),
});
export type PartJob = z.infer<typeof partJobSchema>;

export interface PartResult {
  /** The parts read: one when fanned out; in process, as many as fit one pass (passesOf). */
  parts: number[];
  /** Aggregates of the wanted periods that have rows in these parts (added to the map passed in, if any). */
  aggregators: Map<string, PeriodAggregator>;
  /** Pairs of periods that hold versions of one key (a re-sent row whose event date moved). */
  links: [string, string][];
  /** Rows kept after the upsert, all periods. */
  rows: number;
  /** Staged objects of other periods that no longer exist (expired by a lifecycle rule): skipped. */
  missing: string[];
}

/**
 * The parts of a run in passes: consecutive parts whose staged rows together fit `plan.maxRowsPerPass` are
 * read in one pass (fewer, bigger upserts, in which the rows of one user are more often together); a
 * part with more rows is a pass of its own, read once per slice of its keys.
 */
export function passesOf(plan: AggregationPlan): number[][] {
  const rowsOf = Array.from({ length: plan.parts }, () => 0);
  for (const f of plan.files)
    for (const s of f.staged) rowsOf[s.part % plan.parts] = (rowsOf[s.part % plan.parts] ?? 0) + s.rows;
  const passes: number[][] = [];
  let pass: number[] = [];
  let rows = 0;
  for (const [part, n] of rowsOf.entries()) {
    if (pass.length > 0 && rows + n > plan.maxRowsPerPass) {
      passes.push(pass);
      pass = [];
      rows = 0;
    }
    pass.push(part);
    rows += n;
  }
  if (pass.length > 0) passes.push(pass);
  return passes;
}

/**
 * Upserts every staged row of `parts` (all periods, newest version per key) and aggregates the winners
 * of the `wanted` periods. Memory: at most `plan.maxRowsPerPass` staged rows of the chosen parts (as
 * numbers, StagedRows: about 100 bytes a row; more are read once per slice of their keys), plus the
 * wanted periods' sums. `beforePass` runs before each upsert pass (the run lock's renewal).
 */
export async function aggregateParts(
  objects: Pick<S3Objects, "get">,
  plan: AggregationPlan,
  attribution: AttributionIndex,
  parts: readonly number[],
  wanted: ReadonlySet<string>,
  /** Where to add the winners (in process: the run's own aggregates, so nothing needs merging). */
  aggregators = new Map<string, PeriodAggregator>(),
  beforePass: () => Promise<void> = async () => undefined,
): Promise<PartResult> {
  const chosen = new Set(parts);
  const facts: RowFacts = { user: "", date: "", a: 0, b: 0, kind: 0 };
  const linked = new Set<string>();
  const missing: string[] = [];
  let rows = 0;
  for (const dataset of PART_DATASETS) {
    const versionIdx = versionColumn(dataset);
    // A key in part p of n parts (hash % n = p) is in part p % m of m parts when m divides n.
    const inPart = plan.files.flatMap((f) =>
      f.staged
        .filter((s) => s.dataset === dataset && chosen.has(s.part % plan.parts))
        .map((s) => ({ s, fileId: f.fileId, deliveredAt: Date.parse(f.deliveredAt) })),
    );
    const partRows = inPart.reduce((n, o) => n + o.s.rows, 0);
    const slices = Math.max(1, Math.ceil(partRows / plan.maxRowsPerPass));
    for (let slice = 0; slice < slices; slice++) {
      if (partRows > 0) await beforePass();
      // Sized for this slice's share of the part's rows (a few percent over: the slices are hash ranges).
      const table = new StagedRows(
        (kept, other) => {
          const a = kept.slice(0, 7);
          const b = other.slice(0, 7);
          if (a !== b) linked.add(a < b ? `${a}|${b}` : `${b}|${a}`);
        },
        Math.ceil((partRows / slices) * 1.05),
      );
      for (const { s, fileId, deliveredAt } of inPart) {
        if (slice > 0 && missing.includes(s.key)) continue;
        try {
          await readStaged(objects, plan.stagingBucket, s.key, (row) => {
            const key = row[0] ?? "";
            if (slices > 1 && sliceOf(key, plan.parts, slices) !== slice) return;
            const f = readFacts(dataset, row, facts);
            const version = Number(row[versionIdx] ?? 0);
            table.add(key, version, deliveredAt, fileId, f.user, f.date, f.a, f.b, f.kind);
          });
        } catch (e) {
          // A period being published needs every row; another period's object only could hold a newer
          // version of a moved row, and an expired one (stagingExpirationDays) is history let go.
          if (!isNotFound(e) || wanted.has(s.period)) throw stagedError(s.key, e);
          missing.push(s.key);
        }
      }
      rows += table.size;
      addWinners(dataset, table);
    }
  }
  const links = [...linked].map((l) => l.split("|") as [string, string]);
  return { parts: [...parts], aggregators, links, rows, missing };

  function addWinners(dataset: SummedDataset, table: StagedRows): void {
    // The aggregate of each event date's period, if wanted (looked up once per distinct date).
    const aggOf = table.dates.map((date) => {
      const p = date.slice(0, 7);
      if (!wanted.has(p)) return null;
      let agg = aggregators.get(p);
      if (!agg) {
        agg = new PeriodAggregator(p, attribution);
        aggregators.set(p, agg);
      }
      return agg;
    });
    const dates = table.dates;
    table.forEach((user, d, a, b, kind) => {
      aggOf[d]?.add(dataset, user, dates[d] as string, a, b, kind);
    });
  }
}

function stagedError(key: string, e: unknown): Error {
  if (!isNotFound(e)) return e instanceof Error ? e : new Error(String(e));
  return new Error(
    `staged object ${key} is gone (expired by stagingExpirationDays?): its period cannot be re-published`,
    { cause: e },
  );
}

/** Every period connected to `start` through `links` (start included). */
export function linkedPeriods(
  start: Iterable<string>,
  links: Iterable<readonly [string, string]>,
): Set<string> {
  const next = new Map<string, string[]>();
  for (const [a, b] of links) {
    next.set(a, [...(next.get(a) ?? []), b]);
    next.set(b, [...(next.get(b) ?? []), a]);
  }
  const seen = new Set(start);
  const todo = [...seen];
  for (let p = todo.pop(); p !== undefined; p = todo.pop()) {
    for (const q of next.get(p) ?? []) {
      if (seen.has(q)) continue;
      seen.add(q);
      todo.push(q);
    }
  }
  return seen;
}

const periodStateSchema = z.object({
  period,
  groups: z.array(
    z.object({
      id: z.string(),
      sums: z.array(z.string().regex(/^-?\d+$/)),
      counts: z.array(z.number().int()),
      users: z.array(z.tuple([z.string(), z.string().regex(/^-?\d+$/), z.string().regex(/^-?\d+$/)])),
    }),
  ),
  unattributed: z.array(
    z.tuple([z.string(), z.number().int(), z.string().regex(/^-?\d+$/), z.string().regex(/^-?\d+$/)]),
  ),
  walletDays: z.array(z.tuple([z.string(), z.number().int(), z.string().regex(/^-?\d+$/)])),
}) satisfies z.ZodType<PeriodState>;

const partResultSchema = z.object({
  parts: z.array(z.number().int().nonnegative()),
  periods: z.array(periodStateSchema),
  links: z.array(z.tuple([period, period])),
  rows: z.number().int(),
  missing: z.array(z.string()),
});

export function partResultToJson(r: PartResult): string {
  return JSON.stringify({
    parts: r.parts,
    periods: [...r.aggregators.values()].map((a) => a.toState()),
    links: r.links,
    rows: r.rows,
    missing: r.missing,
  });
}

/** A part result written by another invocation, validated; its aggregates use this process's attribution. */
export function parsePartResult(json: unknown, attribution: AttributionIndex): PartResult {
  const r = partResultSchema.parse(json);
  return {
    parts: r.parts,
    aggregators: new Map(r.periods.map((s) => [s.period, PeriodAggregator.fromState(s, attribution)])),
    links: r.links,
    rows: r.rows,
    missing: r.missing,
  };
}

/** Streams one staged object (gzip CSV with a header) row by row. */
export async function readStaged(
  objects: Pick<S3Objects, "get">,
  bucket: string,
  key: string,
  onRow: (row: string[]) => void,
): Promise<void> {
  const body = await objects.get(bucket, key);
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

/** Where one fanned-out run keeps its plan and part results (the exports bucket; never under exports/). */
export const WORK_PREFIX = "aggregation-work/";

type WorkObjects = Pick<S3Objects, "get" | "put">;

export async function putJsonGz(
  objects: WorkObjects,
  bucket: string,
  key: string,
  json: string,
): Promise<void> {
  await objects.put(bucket, key, gzipSync(json, { level: 1 }), "application/gzip");
}

export async function getJsonGz(objects: WorkObjects, bucket: string, key: string): Promise<unknown> {
  const body = await objects.get(bucket, key);
  const chunks: Buffer[] = [];
  try {
    for await (const c of body.body) chunks.push(Buffer.from(c as Uint8Array));
  } finally {
    body.destroy();
  }
  return JSON.parse(gunzipSync(Buffer.concat(chunks)).toString("utf8"));
}

/** The plan of the run this (warm) process served last: the parts of one run share it. */
let lastPlan: { key: string; plan: AggregationPlan; attribution: AttributionIndex } | null = null;

/** One part of a fanned-out run (functions/aggregate-part.ts): read the plan, aggregate, write the result. */
export async function runPartJob(
  objects: WorkObjects,
  job: PartJob,
): Promise<{ part: number; rows: number; resultKey: string }> {
  const planId = `${job.bucket}/${job.planKey}`;
  if (lastPlan?.key !== planId) {
    const plan = aggregationPlanSchema.parse(await getJsonGz(objects, job.bucket, job.planKey));
    lastPlan = { key: planId, plan, attribution: buildAttributionIndex(plan.memberships, plan.timeZone) };
  }
  const { plan, attribution } = lastPlan;
  const result = await aggregateParts(objects, plan, attribution, [job.part], new Set(job.periods));
  await putJsonGz(objects, job.bucket, job.resultKey, partResultToJson(result));
  return { part: job.part, rows: result.rows, resultKey: job.resultKey };
}

/**
 * The parts of a run over files staged with different part counts (STAGING_PARTITIONS changed): the
 * smallest count, when it divides every other; objects then map to part `part % parts`.
 */
export function runParts(counts: Iterable<number>): number {
  const all = [...new Set(counts)].sort((a, b) => a - b);
  const least = all[0] ?? 1;
  const odd = all.find((n) => n % least !== 0);
  if (odd !== undefined)
    throw new Error(
      `staged files use ${least} and ${odd} key-hash parts, and ${least} does not divide ${odd}: ` +
        "versions of one key could not be matched (keep STAGING_PARTITIONS a power of two)",
    );
  return least;
}
