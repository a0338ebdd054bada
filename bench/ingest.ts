/**
 * End-to-end ingestion throughput and memory: for each size, a generated Points export (bench/
 * csv-parse-only.ts's generator) is written to a temp file, then ingested by the real use case through
 * its ports (file-backed object store, in-memory ledger: no emulator in the measured process), and, in
 * the same run, parsed by csv-parse alone. Each measurement runs in its own child process so its peak
 * RSS is its own. Prints rows/s, MB/s, CPU and peak RSS, and the ratio to csv-parse.
 *
 *   npm run bench:ingest [-- 100000 1000000 5000000]
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { writePointsExport } from "./ingest-data.ts";
import type { Mode, RunResult } from "./ingest-worker.ts";

const run = promisify(execFile);
const worker = fileURLToPath(new URL("./ingest-worker.ts", import.meta.url));

/** One run of bench/ingest-worker.ts in a child process (its own peak RSS): MODE ARGS... */
export async function measure(mode: Mode, ...args: string[]): Promise<RunResult> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", worker, mode, ...args], {
    maxBuffer: 64 << 20,
  });
  const last = stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(last) as RunResult;
}

/** The best of two runs: the lower wall and CPU time (steps of the faster run), the higher peak RSS. */
export function best(prev: RunResult | null, r: RunResult): RunResult {
  if (!prev) return r;
  const faster = r.seconds < prev.seconds ? r : prev;
  return {
    ...faster,
    seconds: Math.min(prev.seconds, r.seconds),
    cpu: Math.min(prev.cpu, r.cpu),
    maxRssMB: Math.max(prev.maxRssMB, r.maxRssMB),
  };
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number);
  if (sizes.length === 0) sizes.push(100_000, 1_000_000, 5_000_000);
  const dir = await mkdtemp(join(tmpdir(), "glr-bench-data-"));
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  console.log(
    `node ${process.version}, ${cpus().length} CPUs, load ${loadavg()[0]?.toFixed(1)}; ` +
      "Points exports, 26 columns; each run in its own process",
  );
  try {
    for (const rows of sizes) {
      const file = join(dir, `points-${rows}.csv`);
      const bytes = await writePointsExport(file, rows);
      // Alternate the two, several rounds up to 1M rows, and keep each one's best wall and CPU time and
      // its highest peak RSS: a busy machine slows a run, it never speeds one up.
      const rounds = rows <= 1_000_000 ? 3 : 1;
      let a: RunResult | null = null;
      let b: RunResult | null = null;
      for (let r = 0; r < rounds; r++) {
        a = best(a, await measure("ingest", file));
        b = best(b, await measure("csv-parse", file));
      }
      if (!a || !b || a.rows !== rows || b.rows !== rows)
        throw new Error(`row counts differ: ${a?.rows} ${b?.rows} ${rows}`);
      const line = (name: string, r: RunResult) =>
        `  ${name.padEnd(22)} ${r.seconds.toFixed(2).padStart(7)} s ${fmt(r.rows / r.seconds).padStart(9)} rows/s ` +
        `${(r.bytes / 1e6 / r.seconds).toFixed(1).padStart(6)} MB/s  CPU ${r.cpu.toFixed(2)} s  peak RSS ${r.maxRssMB.toFixed(0)} MB`;
      console.log(`${fmt(rows)} rows, ${(bytes / 1e6).toFixed(1)} MB (best of ${rounds})`);
      console.log(line("ingest (end to end)", a));
      console.log(line("csv-parse (parse only)", b));
      console.log(
        `  ingest is ${(b.seconds / a.seconds).toFixed(2)}x csv-parse's speed (wall), ` +
          `${(b.cpu / a.cpu).toFixed(2)}x (CPU time; steadier on a busy machine)`,
      );
      await rm(file, { force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// Run only as a script, not when a test imports measure().
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
