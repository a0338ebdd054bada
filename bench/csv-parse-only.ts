/**
 * Parse-only throughput: csv-parse (streaming API) against our CsvParser, on the same in-memory
 * Points-like export (~1M rows, 26 columns, ~130 bytes a row), fed in 64 KiB chunks through the same
 * async iteration. Prints rows/s and MB/s for each and the ratio; both parsers' outputs are checked
 * to agree (row count, field count, characters) so a broken parser cannot look fast.
 *
 *   npx tsx bench/csv-parse-only.ts [rows=1000000] [rounds=2]
 */
import { Readable } from "node:stream";
import { pathToFileURL } from "node:url";
import { parse } from "csv-parse";
import { CsvParser } from "../lib/domain/csv.ts";
import { HEADER, pointsRow } from "./ingest-data.ts";

const CHUNK = 64 * 1024;

function makeExport(rows: number): Uint8Array[] {
  const parts: string[] = [HEADER.join(",")];
  for (let i = 0; i < rows; i++) parts.push(pointsRow(i));
  const bytes = Buffer.from(`${parts.join("\n")}\n`);
  const chunks: Uint8Array[] = [];
  for (let off = 0; off < bytes.length; off += CHUNK) chunks.push(bytes.subarray(off, off + CHUNK));
  return chunks;
}

interface Tally {
  records: number;
  fields: number;
  chars: number;
}

function tally(t: Tally, fields: readonly string[]): void {
  t.records++;
  t.fields += fields.length;
  for (const f of fields) t.chars += f.length;
}

async function withCsvParse(chunks: Uint8Array[]): Promise<Tally> {
  const t: Tally = { records: 0, fields: 0, chars: 0 };
  const parser = Readable.from(chunks, { objectMode: false }).pipe(parse());
  for await (const record of parser as AsyncIterable<string[]>) tally(t, record);
  return t;
}

async function withCsvParser(chunks: Uint8Array[]): Promise<Tally> {
  const t: Tally = { records: 0, fields: 0, chars: 0 };
  let errors = 0;
  const parser = new CsvParser(
    { record: (fields) => tally(t, fields), error: () => errors++ },
    { maxFieldBytes: 64 * 1024, maxRecordBytes: 1024 * 1024 },
  );
  for await (const chunk of Readable.from(chunks, { objectMode: false }) as AsyncIterable<Uint8Array>) {
    parser.push(chunk);
  }
  parser.end();
  if (errors > 0) throw new Error(`CsvParser rejected ${errors} records of valid input`);
  return t;
}

interface Timed {
  tally: Tally;
  /** Wall-clock seconds. */
  seconds: number;
  /** CPU seconds of this process (user + system): steadier than wall time on a shared machine. */
  cpu: number;
}

async function time(run: () => Promise<Tally>): Promise<Timed> {
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const result = await run();
  const cpu = process.cpuUsage(cpu0);
  return {
    tally: result,
    seconds: Number(process.hrtime.bigint() - start) / 1e9,
    cpu: (cpu.user + cpu.system) / 1e6,
  };
}

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 1_000_000);
  const rounds = Number(process.argv[3] ?? 2);
  const chunks = makeExport(rows);
  const bytes = chunks.reduce((n, c) => n + c.length, 0);
  console.log(
    `input: ${rows} rows + header, ${(bytes / 1e6).toFixed(1)} MB, ${(bytes / (rows + 1)).toFixed(0)} bytes/row, ` +
      `${HEADER.length} columns, ${chunks.length} chunks of 64 KiB; node ${process.version}`,
  );
  // Warm both up on a slice so JIT compilation is not billed to the first timed run.
  const warm = makeExport(Math.min(rows, 50_000));
  await withCsvParse(warm);
  await withCsvParser(warm);

  const best = { csvParse: [Infinity, Infinity], ours: [Infinity, Infinity] };
  const rate = (s: number) => Math.round(rows / s).toLocaleString("en-US");
  const line = (name: string, t: Timed) =>
    `  ${name.padEnd(10)} ${(t.seconds * 1000).toFixed(0).padStart(6)} ms  ${rate(t.seconds).padStart(9)} rows/s  ` +
    `${(bytes / 1e6 / t.seconds).toFixed(1).padStart(6)} MB/s   (CPU ${(t.cpu * 1000).toFixed(0)} ms: ` +
    `${rate(t.cpu)} rows/s, ${(bytes / 1e6 / t.cpu).toFixed(1)} MB/s)`;
  for (let r = 0; r < rounds; r++) {
    const a = await time(() => withCsvParse(chunks));
    const b = await time(() => withCsvParser(chunks));
    if (JSON.stringify(a.tally) !== JSON.stringify(b.tally)) {
      throw new Error(
        `outputs differ: csv-parse ${JSON.stringify(a.tally)} vs CsvParser ${JSON.stringify(b.tally)}`,
      );
    }
    best.csvParse = [
      Math.min(best.csvParse[0] ?? Infinity, a.seconds),
      Math.min(best.csvParse[1] ?? Infinity, a.cpu),
    ];
    best.ours = [Math.min(best.ours[0] ?? Infinity, b.seconds), Math.min(best.ours[1] ?? Infinity, b.cpu)];
    console.log(`round ${r + 1}`);
    console.log(line("csv-parse", a));
    console.log(line("CsvParser", b));
  }
  const [aWall = Infinity, aCpu = Infinity] = best.csvParse;
  const [bWall = Infinity, bCpu = Infinity] = best.ours;
  console.log(
    `best wall: csv-parse ${rate(aWall)} rows/s, CsvParser ${rate(bWall)} rows/s, ratio ${(aWall / bWall).toFixed(1)}x`,
  );
  console.log(
    `best CPU:  csv-parse ${rate(aCpu)} rows/s, CsvParser ${rate(bCpu)} rows/s, ratio ${(aCpu / bCpu).toFixed(1)}x`,
  );
}

// Run only as a script, not when imported for its generator.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
