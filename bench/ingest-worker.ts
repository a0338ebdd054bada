/**
 * One measured run in its own process, so that its peak RSS is its own: either the ingest use case
 * fed through its ports from a local file (`ingest FILE`), or csv-parse's bare streaming parse of the
 * same bytes (`csv-parse FILE`). Prints one JSON line: rows, seconds, cpu seconds, bytes, maxRssMB.
 *
 *   npx tsx bench/ingest-worker.ts ingest|csv-parse FILE
 */
import { createReadStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parse } from "csv-parse";
import { LocalObjects, MemoryLedger } from "../lib/adapters/local-ports.ts";
import { ZonedCalendar } from "../lib/domain/dates.ts";
import { ingestObject } from "../lib/ingest.ts";
import type { Log } from "../lib/logger.ts";

export interface RunResult {
  mode: "ingest" | "csv-parse";
  rows: number;
  accepted: number;
  seconds: number;
  cpu: number;
  bytes: number;
  maxRssMB: number;
}

const quiet: Log = { info() {}, warn() {}, error() {}, debug() {} } as unknown as Log;

export async function ingestFile(file: string, keepWrites = false): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), "glr-bench-"));
  const objects = new LocalObjects(dir);
  objects.keepWrites = keepWrites;
  const { size } = await stat(file);
  objects.addFile("bench", "exports/points/points.csv", file, "bench-etag");
  const ledger = new MemoryLedger();
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  try {
    const out = await ingestObject(
      {
        objects,
        ledger,
        now: () => new Date(),
        log: quiet,
        settings: {
          stagingBucket: "bench",
          partitions: 8,
          calendar: new ZonedCalendar("UTC"),
          columnMap: {},
          maxFieldBytes: 64 * 1024,
          maxRecordBytes: 1024 * 1024,
          tmpDir: dir,
        },
      },
      {
        bucket: "bench",
        key: "exports/points/points.csv",
        size,
        eTag: "bench-etag",
        sequencer: "01",
        eventTime: "2024-02-01T00:00:00.000Z",
      },
    );
    const cpu = process.cpuUsage(cpu0);
    if (out.status !== "COMMITTED") throw new Error(`not committed: ${JSON.stringify(out)}`);
    return {
      mode: "ingest",
      rows: out.rowsRead,
      accepted: out.rowsAccepted,
      seconds: Number(process.hrtime.bigint() - start) / 1e9,
      cpu: (cpu.user + cpu.system) / 1e6,
      bytes: size,
      maxRssMB: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function csvParseFile(file: string): Promise<RunResult> {
  const { size } = await stat(file);
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let rows = -1; // the header is not a row
  const parser = createReadStream(file, { highWaterMark: 64 * 1024 }).pipe(parse());
  for await (const _ of parser as AsyncIterable<string[]>) rows++;
  const cpu = process.cpuUsage(cpu0);
  return {
    mode: "csv-parse",
    rows,
    accepted: rows,
    seconds: Number(process.hrtime.bigint() - start) / 1e9,
    cpu: (cpu.user + cpu.system) / 1e6,
    bytes: size,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [mode, file] = process.argv.slice(2);
  if (!file || (mode !== "ingest" && mode !== "csv-parse")) {
    console.error("usage: ingest-worker.ts ingest|csv-parse FILE");
    process.exit(2);
  }
  const r = mode === "ingest" ? await ingestFile(file) : await csvParseFile(file);
  console.log(JSON.stringify(r));
}
