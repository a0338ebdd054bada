/**
 * `npm run bench`: the whole path (ingest, aggregate) on generated data of several sizes (Points and
 * Points Redemption Summary exports plus a membership: bench/ingest-data.ts), in process and against the
 * local stack, with, measured in the same run on the same bytes: csv-parse parsing only, udsv parsing
 * only, and DuckDB (one thread) computing the same group summary from the same CSVs and membership. DuckDB's
 * figures must equal ours (in process and on the stack), every group, period and figure: otherwise the
 * first difference is printed and the exit code is 1. Every measurement runs in its own child process
 * (bench/ingest-worker.ts), so its peak RSS is its own; the sizes up to 1M rows take the best of
 * --rounds rounds (a busy machine slows a run, it never speeds one up). Prints one table.
 *
 *   npm run bench [-- --sizes 100000,1000000] [--big] [--rounds 3] [--stack-max 100000]
 *     --big             adds 5,000,000 rows
 *     --stack-max N     the largest size also run on the local stack (0: none); its group sync grows with
 *                       the number of groups (rows / 80) and dominates there
 */
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, freemem, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { firstDifference } from "./duckdb-summary.ts";
import { best, measure } from "./ingest.ts";
import { type BenchData, writeBenchData } from "./ingest-data.ts";
import type { RunResult } from "./ingest-worker.ts";

const { values: o } = parseArgs({
  options: {
    sizes: { type: "string", default: "100000,1000000" },
    big: { type: "boolean", default: false },
    rounds: { type: "string", default: "3" },
    "stack-max": { type: "string", default: "100000" },
  },
});
const sizes = (o.sizes ?? "")
  .split(",")
  .filter((s) => s !== "")
  .map(Number);
if (o.big) sizes.push(5_000_000);
const ROUNDS = Number(o.rounds);
const STACK_MAX = Number(o["stack-max"]);
if (sizes.some((n) => !Number.isInteger(n) || n < 1000) || !(ROUNDS >= 1) || !(STACK_MAX >= 0)) {
  console.error("usage: npm run bench -- [--sizes 100000,1000000] [--big] [--rounds 3] [--stack-max 100000]");
  process.exit(2);
}

interface Line {
  size: number;
  name: string;
  r: RunResult;
  rounds: number;
  /** Ours: compared with the references (csv-parse, udsv, DuckDB). */
  ours: boolean;
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const fix = (n: number, d: number) => n.toFixed(d);

function machine(): string {
  const cpu = cpus();
  const [l1 = 0, l5 = 0, l15 = 0] = loadavg();
  return (
    `node ${process.version}, ${cpu.length} CPUs (${cpu[0]?.model.trim() ?? "unknown"}), ` +
    `${fix(totalmem() / 2 ** 30, 1)} GiB RAM (${fix(freemem() / 2 ** 30, 1)} free), ` +
    `load average ${fix(l1, 2)} ${fix(l5, 2)} ${fix(l15, 2)}`
  );
}

async function readRows(file: string): Promise<Record<string, string>[]> {
  return JSON.parse(await readFile(file, "utf8")) as Record<string, string>[];
}

/** Fails loudly when DuckDB's group summary and ours differ. */
async function check(data: BenchData, duck: string, ours: string, what: string): Promise<void> {
  const d = await readRows(duck);
  const diff = firstDifference(d, await readRows(ours));
  if (diff !== null) {
    console.error(`\nFAIL ${fmt(data.rows)} rows: DuckDB and ${what} differ: ${diff}`);
    process.exit(1);
  }
  console.log(
    `  ${what}: group_summary equals DuckDB's (${fmt(d.length)} group-period rows, 12 figures each)`,
  );
}

async function benchSize(size: number, root: string): Promise<Line[]> {
  const dir = join(root, String(size));
  await mkdir(dir, { recursive: true });
  const data = await writeBenchData(dir, size);
  const rounds = size <= 1_000_000 ? ROUNDS : 1;
  console.log(
    `${fmt(size)} rows (${fmt(data.pointsRows)} Points + ${fmt(data.redemptionRows)} Redemption Summary), ` +
      `${fix(data.bytes / 1e6, 1)} MB, ${fmt(data.users)} users; ${rounds} round(s)`,
  );
  const exports = [data.files.points, data.files.redemptions];
  const out = (name: string) => join(dir, `${name}.json`);
  const results = new Map<string, RunResult>();
  const keep = (name: string, r: RunResult) => {
    if (r.rows !== data.rows) throw new Error(`${name}: ${r.rows} rows, expected ${data.rows}`);
    results.set(name, best(results.get(name) ?? null, r));
  };
  for (let round = 0; round < rounds; round++) {
    keep("ingest", await measure("ingest", ...exports));
    keep("path", await measure("path", dir, out("path")));
    keep("csv-parse", await measure("csv-parse", ...exports));
    keep("udsv", await measure("udsv", ...exports));
    keep("duckdb", await measure("duckdb", dir, out("duckdb")));
    if (round === 0) await check(data, out("duckdb"), out("path"), "in process");
    process.stdout.write(`  round ${round + 1}/${rounds} done\n`);
  }
  const lines: Line[] = [];
  const get = (name: string) => results.get(name) ?? fail(`no ${name} result`);
  lines.push({ size, name: "in process: ingest only", r: get("ingest"), rounds, ours: true });
  lines.push({ size, name: "in process: ingest + aggregate", r: get("path"), rounds, ours: true });
  if (size <= STACK_MAX) {
    const r = await measure("stack", dir, out("stack"));
    if (r.rows !== data.rows) throw new Error(`stack: ${r.rows} rows, expected ${data.rows}`);
    await check(data, out("duckdb"), out("stack"), "local stack");
    lines.push({ size, name: "local stack: sync + ingest + aggregate", r, rounds: 1, ours: true });
  }
  lines.push({ size, name: "csv-parse: parse only", r: get("csv-parse"), rounds, ours: false });
  lines.push({ size, name: "udsv: parse only", r: get("udsv"), rounds, ours: false });
  lines.push({ size, name: "DuckDB: group summary, 1 thread", r: get("duckdb"), rounds, ours: false });
  await rm(dir, { recursive: true, force: true });
  return lines;
}

function fail(message: string): never {
  throw new Error(message);
}

function table(lines: readonly Line[]): string {
  const head = [
    "rows",
    "path",
    "MB",
    "s",
    "CPU s",
    "rows/s",
    "MB/s",
    "peak RSS MB",
    "vs csv-parse",
    "vs udsv",
    "vs DuckDB",
  ];
  const out = [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i < 2 ? "---" : "--:")).join("|")}|`];
  for (const l of lines) {
    const ref = (name: string) => lines.find((x) => x.size === l.size && x.name.startsWith(name))?.r;
    const ratio = (name: string) => {
      const theirs = ref(name);
      return l.ours && theirs ? `${fix(theirs.seconds / l.r.seconds, 2)}x` : "";
    };
    const { r } = l;
    out.push(
      `| ${[
        fmt(l.size),
        l.name,
        fix(r.bytes / 1e6, 1),
        fix(r.seconds, 2),
        fix(r.cpu, 2),
        fmt(r.rows / r.seconds),
        fix(r.bytes / 1e6 / r.seconds, 1),
        fmt(r.maxRssMB),
        ratio("csv-parse"),
        ratio("udsv"),
        ratio("DuckDB"),
      ].join(" | ")} |`,
    );
  }
  return out.join("\n");
}

async function main(): Promise<void> {
  const before = machine();
  console.log(before);
  const root = await mkdtemp(join(tmpdir(), "glr-bench-run-"));
  const lines: Line[] = [];
  try {
    for (const size of sizes) lines.push(...(await benchSize(size, root)));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  console.log(`\nmachine before: ${before}\nmachine after:  ${machine()}`);
  console.log(
    "Ratios = their wall time / ours on the same bytes in the same run (> 1: we are faster). Best of the " +
      `rounds up to 1M rows; the local stack once, sizes up to ${fmt(STACK_MAX)} rows.\n`,
  );
  console.log(table(lines));
  const steps = lines.filter((l) => l.r.steps);
  if (steps.length > 0) console.log("\nsteps (s):");
  for (const l of steps) {
    const s = Object.entries(l.r.steps ?? {})
      .map(([k, v]) => `${k} ${fix(v, 2)}`)
      .join(", ");
    console.log(`  ${fmt(l.size)} ${l.name}: ${s}`);
  }
}

await main();
