/**
 * One measured run in its own process, so that its peak RSS is its own. Modes:
 *   ingest FILE...         the ingest use case fed through its ports from local files, one after another
 *   csv-parse FILE...      csv-parse's bare streaming parse of the same bytes (no row handling)
 *   udsv FILE...           udsv's chunked parse (string arrays, no accumulation) of the same bytes
 *   path DATADIR OUT       the whole path in process: ingest both exports, then aggregatePeriods
 *   duckdb DATADIR OUT     DuckDB (one thread) computing the group summary from the raw CSVs
 *   stack DATADIR OUT      the whole path through the handlers on the local stack (bench/stack-path.ts)
 * DATADIR is written by bench/ingest-data.ts writeBenchData (bench.json + the CSVs); OUT receives the
 * group summary rows (JSON) for the comparison. Prints one JSON line: a RunResult.
 *
 *   npx tsx bench/ingest-worker.ts MODE ARGS...
 */
import { createReadStream } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { pathToFileURL } from "node:url";
import { parse } from "csv-parse";
import { inferSchema, initParser, type Parser } from "udsv";
import { LocalObjects, MemoryLedger } from "../lib/adapters/local-ports.ts";
import { type AggregateDeps, aggregatePeriods } from "../lib/aggregate.ts";
import { ZonedCalendar } from "../lib/domain/dates.ts";
import type { GroupMeta, Membership } from "../lib/domain/membership.ts";
import { ingestObject } from "../lib/ingest.ts";
import type { Log } from "../lib/logger.ts";
import { duckdbGroupSummary } from "./duckdb-summary.ts";
import { readBenchData, readMemberships } from "./ingest-data.ts";

export const MODES = ["ingest", "csv-parse", "udsv", "path", "duckdb", "stack"] as const;
export type Mode = (typeof MODES)[number];

export interface RunResult {
  mode: Mode;
  rows: number;
  accepted: number;
  seconds: number;
  cpu: number;
  bytes: number;
  maxRssMB: number;
  /** Seconds of the parts of a run (path: ingest, aggregate; stack: sync, upload+ingest, aggregate). */
  steps?: Record<string, number>;
}

export const quietLog: Log = { info() {}, warn() {}, error() {}, debug() {} } as unknown as Log;
const calendar = new ZonedCalendar("UTC");

/** Wall and CPU time of a run, and this process's peak RSS so far. */
async function timed<T>(
  run: () => Promise<T>,
): Promise<{ value: T; seconds: number; cpu: number; maxRssMB: number }> {
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const value = await run();
  const cpu = process.cpuUsage(cpu0);
  return {
    value,
    seconds: Number(process.hrtime.bigint() - start) / 1e9,
    cpu: (cpu.user + cpu.system) / 1e6,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  };
}

/** Ingests one local file as s3://bench/KEY through the use case; returns rows read and accepted. */
async function ingestInto(
  objects: LocalObjects,
  ledger: MemoryLedger,
  tmpDir: string,
  file: string,
  key: string,
  sequencer: string,
): Promise<{ rows: number; accepted: number; bytes: number }> {
  const { size } = await stat(file);
  const eTag = `bench-${sequencer}`;
  objects.addFile("bench", key, file, eTag);
  const out = await ingestObject(
    {
      objects,
      ledger,
      now: () => new Date(),
      log: quietLog,
      settings: {
        stagingBucket: "bench",
        partitions: 8,
        calendar,
        columnMap: {},
        maxFieldBytes: 64 * 1024,
        maxRecordBytes: 1024 * 1024,
        tmpDir,
      },
    },
    { bucket: "bench", key, size, eTag, sequencer, eventTime: "2024-03-01T00:00:00.000Z" },
  );
  if (out.status !== "COMMITTED") throw new Error(`${key} not committed: ${JSON.stringify(out)}`);
  return { rows: out.rowsRead, accepted: out.rowsAccepted, bytes: size };
}

/** Ingests local files (as exports delivered in this order) through the use case, in one process. */
export async function ingestFile(file: string | readonly string[], keepWrites = false): Promise<RunResult> {
  const files = typeof file === "string" ? [file] : file;
  const dir = await mkdtemp(join(tmpdir(), "glr-bench-"));
  const objects = new LocalObjects(dir);
  objects.keepWrites = keepWrites;
  const ledger = new MemoryLedger();
  try {
    const t = await timed(async () => {
      const sum = { rows: 0, accepted: 0, bytes: 0 };
      for (const [i, f] of files.entries()) {
        const seq = String(i + 1).padStart(2, "0");
        const r = await ingestInto(objects, ledger, dir, f, `exports/bench/${seq}/${basename(f)}`, seq);
        sum.rows += r.rows;
        sum.accepted += r.accepted;
        sum.bytes += r.bytes;
      }
      return sum;
    });
    return { mode: "ingest", ...t.value, seconds: t.seconds, cpu: t.cpu, maxRssMB: t.maxRssMB };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function parseFiles(
  mode: "csv-parse" | "udsv",
  files: readonly string[],
  parseOne: (file: string) => Promise<number>,
): Promise<RunResult> {
  let bytes = 0;
  for (const f of files) bytes += (await stat(f)).size;
  const t = await timed(async () => {
    let rows = 0;
    for (const f of files) rows += await parseOne(f);
    return rows;
  });
  return {
    mode,
    rows: t.value,
    accepted: t.value,
    seconds: t.seconds,
    cpu: t.cpu,
    bytes,
    maxRssMB: t.maxRssMB,
  };
}

/** csv-parse's streaming parse of one file: the number of records after the header. */
async function csvParseRows(file: string): Promise<number> {
  let rows = -1; // the header is not a row
  const parser = createReadStream(file, { highWaterMark: 64 * 1024 }).pipe(parse());
  for await (const _ of parser as AsyncIterable<string[]>) rows++;
  return rows;
}

/** udsv's incremental parse of one file (string arrays, a counting callback instead of its accumulator). */
async function udsvRows(file: string): Promise<number> {
  let rows = 0;
  let parser: Parser | null = null;
  const count = () => {
    rows++;
  };
  const text = new StringDecoder("utf8");
  for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024 })) {
    const s = text.write(chunk as Buffer);
    parser ??= initParser(inferSchema(s, { col: ",", row: "\n", encl: '"' }));
    parser.chunk<string[]>(s, parser.stringArrs, count);
  }
  const rest = text.end();
  if (parser && rest) parser.chunk<string[]>(rest, parser.stringArrs, count);
  parser?.end();
  return rows;
}

export async function csvParseFile(file: string): Promise<RunResult> {
  return parseFiles("csv-parse", [file], csvParseRows);
}

/** The groups of a membership, as a sync would store them (one program, a wallet balance and a tier). */
export function groupMetasOf(memberships: readonly Membership[]): GroupMeta[] {
  const ids = [...new Set(memberships.map((m) => m.groupId))];
  return ids.map((id) => ({
    groupId: id,
    externalId: `EXT-${id}`,
    name: `Bench group ${id}`,
    status: "ACTIVE",
    programs: [{ programId: "1001", loyaltyPoints: `${Number(id) % 1000}.5`, currentSlab: "Gold" }],
    syncedAt: "2024-03-01T00:00:00.000Z",
  }));
}

/**
 * The whole path in process: both exports through ingestObject (file-backed object store, in-memory
 * ledger), then aggregatePeriods over the dirty periods with the generated membership. Writes the
 * group_summary rows of every period to `out`.
 */
export async function runInProcess(dataDir: string, out: string): Promise<RunResult> {
  const data = await readBenchData(dataDir);
  const dir = await mkdtemp(join(tmpdir(), "glr-bench-path-"));
  const objects = new LocalObjects(dir);
  const ledger = new MemoryLedger();
  const reports = new Map<string, Buffer>();
  try {
    const t = await timed(async () => {
      const t0 = performance.now();
      const a = await ingestInto(objects, ledger, dir, data.files.points, "exports/points/points.csv", "01");
      const b = await ingestInto(
        objects,
        ledger,
        dir,
        data.files.redemptions,
        "exports/redemptions/points_redemption_summary.csv",
        "02",
      );
      const t1 = performance.now();
      const memberships = await readMemberships(data.files.membership);
      const deps: AggregateDeps = {
        objects: {
          get: (bucket, key) => objects.get(bucket, key),
          getText: async (bucket, key) => reports.get(`${bucket}/${key}`)?.toString("utf8") ?? null,
          put: async (bucket, key, body) => {
            reports.set(`${bucket}/${key}`, Buffer.from(body));
          },
          async *list() {},
          delete: async () => undefined,
        },
        ledger: {
          get: (id) => ledger.get(id),
          list: () => ledger.list(),
          listPeriods: () => ledger.listPeriods(),
          getPeriod: async () => null,
          markReported: async () => undefined,
          acquireAggregateLock: async () => true,
          releaseAggregateLock: async () => true,
        },
        membership: {
          listGroupMetas: async () => groupMetasOf(memberships),
          listAllMemberships: async function* () {
            yield* memberships;
          },
        },
        settings: { stagingBucket: "bench", reportsBucket: "reports", partitions: 8, calendar },
        now: () => new Date(),
        log: quietLog,
      };
      const periods = (await ledger.listPeriods()).map((p) => p.period);
      const published = await aggregatePeriods(deps, periods);
      const t2 = performance.now();
      return { a, b, published, steps: { ingest: (t1 - t0) / 1000, aggregate: (t2 - t1) / 1000 } };
    });
    const rows: Record<string, string>[] = [];
    for (const p of t.value.published) {
      const key = p.files.find((f) => f.name === "group_summary.json")?.key ?? "";
      const body = reports.get(`reports/${key}`)?.toString("utf8");
      if (body === undefined) throw new Error(`no group_summary.json for ${p.period}`);
      rows.push(...(JSON.parse(body) as { rows: Record<string, string>[] }).rows);
    }
    await writeFile(out, JSON.stringify(rows));
    const { a, b, steps } = t.value;
    return {
      mode: "path",
      rows: a.rows + b.rows,
      accepted: a.accepted + b.accepted,
      seconds: t.seconds,
      cpu: t.cpu,
      bytes: a.bytes + b.bytes,
      maxRssMB: t.maxRssMB,
      steps,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** DuckDB's group summary of the bench data; writes its rows to `out`. */
export async function runDuckDb(dataDir: string, out: string): Promise<RunResult> {
  const data = await readBenchData(dataDir);
  const t = await timed(() => duckdbGroupSummary(data.files));
  await writeFile(out, JSON.stringify(t.value));
  return {
    mode: "duckdb",
    rows: data.rows,
    accepted: data.rows,
    seconds: t.seconds,
    cpu: t.cpu,
    bytes: data.bytes,
    maxRssMB: t.maxRssMB,
  };
}

async function main(mode: string | undefined, args: string[]): Promise<RunResult> {
  const [a = "", b = ""] = args;
  switch (mode) {
    case "ingest":
      return ingestFile(args);
    case "csv-parse":
      return parseFiles("csv-parse", args, csvParseRows);
    case "udsv":
      return parseFiles("udsv", args, udsvRows);
    case "path":
      return runInProcess(a, b);
    case "duckdb":
      return runDuckDb(a, b);
    case "stack": {
      const { runOnStack } = await import("./stack-path.ts");
      return runOnStack(await readBenchData(a), b);
    }
    default:
      console.error(`usage: ingest-worker.ts ${MODES.join("|")} ARGS...`);
      process.exit(2);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [mode, ...args] = process.argv.slice(2);
  const r = await main(mode, args);
  console.log(JSON.stringify(r));
  // The local stack's clients may keep sockets open: the result is out, leave.
  process.exit(0);
}
