/**
 * `npm run bench:aggregate`: aggregates one month of staged rows (default 5M Points + Redemption Summary
 * rows over 50,000 groups of 4 members, a Members snapshot of every member) through the real use case
 * (lib/aggregate.ts aggregatePeriods), reading staged parts from local files, and prints the time and
 * the peak RSS of the aggregating process (a child process, so that generating the data does not count).
 * Compare the peak with a 1 GB Lambda (1,024 MiB). Never asserted in tests.
 *
 *   npm run bench:aggregate -- [--rows 5000000] [--groups 50000] [--dir .bench-aggregate] [--heap 920]
 *                              [--max-rows-per-pass 1000000]
 *
 * Measured here (2 cores, quiet, 4 December 2026): 24 to 27 s (32 to 36 s CPU), peak RSS 810 to 885 MiB
 * with the heap limited to 920 MiB; with rows kept as packed strings (before 581c3a2) 31 to 34 s, 793 to
 * 802 MiB. Before rows were packed and bodies rendered one at a time: 1,300 MiB (heap unlimited).
 *
 * The data are written once into --dir (gzip level 1, as ingestion stages them) and reused.
 */
import { spawnSync } from "node:child_process";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createGzip } from "node:zlib";
import type { LedgerEntry, StagedObject } from "../lib/adapters/ledger-store.ts";
import { type AggregateDeps, aggregatePeriods } from "../lib/aggregate.ts";
import { encodeCsvRecord } from "../lib/domain/csv.ts";
import { ZonedCalendar } from "../lib/domain/dates.ts";
import type { GroupMeta, Membership } from "../lib/domain/membership.ts";
import { STAGED_COLUMNS } from "../lib/domain/normalize.ts";
import { partOf, stagedKey } from "../lib/domain/partition.ts";

const PERIOD = "2026-10";
const PARTS = 8;
const FILES = 10;
const MEMBERS_PER_GROUP = 4;

const { values: o } = parseArgs({
  options: {
    rows: { type: "string", default: "5000000" },
    groups: { type: "string", default: "50000" },
    dir: { type: "string", default: ".bench-aggregate" },
    // Old-space limit of the aggregating process, MiB: like a 1 GB Lambda function's (0 = Node's default).
    heap: { type: "string", default: "920" },
    // Staged rows of a part held at once (lib/aggregate-parts.ts slices bigger parts): AGGREGATE_MAX_ROWS_PER_PASS.
    "max-rows-per-pass": { type: "string", default: "1000000" },
    child: { type: "boolean", default: false },
  },
});
const rows = Number(o.rows);
const groups = Number(o.groups);
const dir = resolve(o.dir);

/** Deterministic pseudo-random numbers (xorshift32). */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

const userOf = (g: number, k: number) => String(1_000_000_000 + g * MEMBERS_PER_GROUP + k);
const groupId = (g: number) => String(500_000 + g);

function memberships(): Membership[] {
  const out: Membership[] = [];
  for (let g = 0; g < groups; g++) {
    for (let k = 0; k < MEMBERS_PER_GROUP; k++) {
      out.push({
        groupId: groupId(g),
        userId: userOf(g, k),
        role: k === 0 ? "PRIMARY" : "SECONDARY",
        primaryMember: k === 0,
        defaultGroup: true,
        active: k !== 3 || g % 10 !== 0,
        joinedOn: k === 2 ? "2026-10-15" : "2025-01-01",
        firstSeenAt: "2026-09-01T00:00:00.000Z",
        lastSeenAt: "2026-11-01T00:00:00.000Z",
        exitSeenAt: k === 3 && g % 10 === 0 ? "2026-10-20T08:00:00.000Z" : null,
        firstSeenExited: false,
        previousStints: [],
      });
    }
  }
  return out;
}

function groupMetas(): GroupMeta[] {
  const tiers = ["Gold", "Silver", "Bronze"];
  return Array.from({ length: groups }, (_, g) => ({
    groupId: groupId(g),
    externalId: `EXT-${g}`,
    name: `Group ${g}`,
    status: "ACTIVE",
    programs: [{ programId: "1", loyaltyPoints: `${g % 1000}.5`, currentSlab: tiers[g % 3] ?? null }],
    syncedAt: "2026-11-01T00:00:00.000Z",
  }));
}

async function writeGz(path: string, lines: Iterable<string>): Promise<void> {
  const gz = createGzip({ level: 1 });
  const out = createWriteStream(path);
  gz.pipe(out);
  let buf = "";
  for (const l of lines) {
    buf += `${l}\n`;
    if (buf.length > 1 << 16) {
      if (!gz.write(buf)) await new Promise<void>((r) => gz.once("drain", () => r()));
      buf = "";
    }
  }
  gz.end(buf);
  await new Promise<void>((r, j) => out.on("finish", () => r()).on("error", j));
}

/** Writes staged parts: 90% Points, 10% Redemption Summary, 10 files, 2% of Points re-sent by a later file. */
async function generate(): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const entries: LedgerEntry[] = [];
  const users = groups * MEMBERS_PER_GROUP;
  for (let f = 0; f < FILES; f++) {
    const fileId = `bench${String(f).padStart(4, "0")}`;
    const rand = rng(f + 1);
    const perFile = Math.floor(rows / FILES);
    const byPart = new Map<string, string[]>();
    const push = (dataset: "points" | "points_redemption_summary", key: string, line: string) => {
      const id = `${dataset}|${partOf(key, PARTS)}`;
      let l = byPart.get(id);
      if (!l) {
        l = [encodeCsvRecord(STAGED_COLUMNS[dataset])];
        byPart.set(id, l);
      }
      l.push(line);
    };
    for (let i = 0; i < perFile; i++) {
      const n = f * perFile + i;
      const user = 1_000_000_000 + Math.floor(rand() * users) + (rand() < 0.05 ? users : 0); // 5% in no group
      const day = 1 + Math.floor(rand() * 31);
      const date = `${PERIOD}-${String(day).padStart(2, "0")}`;
      if (n % 10 === 9) {
        const type = rand() < 0.3 ? "group_redemption" : "redemption";
        push(
          "points_redemption_summary",
          `r${n}`,
          `r${n},${user},${date},${Math.floor(rand() * 100_000)},${type},${n}`,
        );
      } else {
        // 2% of a file re-sends an earlier file's event (newer version): upserted, not added.
        const id = f > 0 && rand() < 0.02 ? `p${n - perFile}` : `p${n}`;
        const r = rand();
        const [alloc, ded, type] =
          r < 0.7
            ? [Math.floor(rand() * 50_000), 0, ""]
            : [0, Math.floor(rand() * 20_000), r < 0.9 ? "redeemed" : "expired"];
        const ename = rand() < 0.2 ? "grouptransactionadd" : "transactionadd";
        push("points", id, `${id},${user},${date},${alloc},${ded},${type},${ename},${n}`);
      }
    }
    const staged: StagedObject[] = [];
    for (const [id, lines] of byPart) {
      const [dataset = "points", part = "0"] = id.split("|");
      const key = stagedKey(dataset, PERIOD, Number(part), fileId);
      const path = join(dir, key.replaceAll("/", "__"));
      await writeGz(path, lines);
      staged.push({
        key,
        dataset: dataset as StagedObject["dataset"],
        period: PERIOD,
        part: Number(part),
        rows: lines.length - 1,
      });
    }
    entries.push(entry(fileId, staged, f, [PERIOD]));
    process.stdout.write(`\rgenerated file ${f + 1}/${FILES}`);
  }
  // The Members snapshot: one file, every member.
  const mKey = stagedKey("members", PERIOD, 0, "benchmembers");
  const mLines = function* () {
    yield encodeCsvRecord(STAGED_COLUMNS.members);
    for (let u = 0; u < users; u++) yield `${1_000_000_000 + u},${u * 7},${u * 13},${u * 3},Gold,1`;
  };
  await writeGz(join(dir, mKey.replaceAll("/", "__")), mLines());
  entries.push(
    entry(
      "benchmembers",
      [{ key: mKey, dataset: "members", period: PERIOD, part: 0, rows: users }],
      FILES,
      [],
    ),
  );
  await writeFile(join(dir, "ledger.json"), JSON.stringify({ rows, groups, entries }));
  console.log(`\ndata written to ${dir}`);
}

function entry(fileId: string, staged: StagedObject[], seq: number, periods: string[]): LedgerEntry {
  return {
    fileId,
    bucket: "exports",
    sourceKey: `exports/bench/${fileId}.csv`,
    eTag: fileId,
    size: 1,
    sequencer: String(seq).padStart(8, "0"),
    deliveredAt: new Date(Date.UTC(2026, 10, 1, 0, seq)).toISOString(),
    status: "COMMITTED",
    reason: null,
    attempts: 1,
    entries: [
      {
        name: fileId,
        template: staged[0]?.dataset ?? "points",
        rowsRead: 1,
        rowsAccepted: 1,
        rowsRejected: 0,
        firstRejectReason: null,
        error: null,
        columns: ["event_name"],
      },
      ...(staged.some((s) => s.dataset === "points_redemption_summary")
        ? [
            {
              name: `${fileId}-rs`,
              template: "points_redemption_summary" as const,
              rowsRead: 1,
              rowsAccepted: 1,
              rowsRejected: 0,
              firstRejectReason: null,
              error: null,
              columns: [],
            },
          ]
        : []),
    ],
    staged,
    periods,
    rejectsKey: null,
    startedAt: "2026-11-01T00:00:00.000Z",
    finishedAt: "2026-11-01T00:00:00.000Z",
  };
}

async function child(): Promise<void> {
  const { readFile } = await import("node:fs/promises");
  const data = JSON.parse(await readFile(join(dir, "ledger.json"), "utf8")) as { entries: LedgerEntry[] };
  const written: { key: string; bytes: number }[] = [];
  const deps: AggregateDeps = {
    objects: {
      get: async (_bucket, key) => {
        const s = createReadStream(join(dir, key.replaceAll("/", "__")));
        return {
          body: s,
          destroy: () => s.destroy(),
          contentLength: null,
          contentEncoding: null,
          eTag: null,
        };
      },
      getText: async () => null,
      put: async (_b, key, body) => {
        written.push({ key, bytes: typeof body === "string" ? Buffer.byteLength(body) : body.byteLength });
      },
      list: async function* () {},
      delete: async () => undefined,
    },
    ledger: {
      get: async () => null,
      list: async () => data.entries,
      listPeriods: async () => [],
      getPeriod: async () => null,
      markReported: async () => undefined,
      acquireAggregateLock: async () => true,
      releaseAggregateLock: async () => true,
    },
    membership: {
      listGroupMetas: async () => groupMetas(),
      listAllMemberships: async function* () {
        yield* memberships();
      },
    },
    settings: {
      stagingBucket: "exports",
      reportsBucket: "reports",
      partitions: PARTS,
      calendar: new ZonedCalendar("UTC"),
      maxRowsPerPass: Number(o["max-rows-per-pass"]),
    },
    now: () => new Date("2026-11-02T00:00:00Z"),
    log: {
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
      debug: () => undefined,
    } as never,
    progress: (l) => {
      const m = process.memoryUsage();
      console.error(
        `  ${l}  [heap ${Math.round(m.heapUsed / 2 ** 20)} MiB, rss ${Math.round(m.rss / 2 ** 20)} MiB]`,
      );
    },
  };
  const t0 = performance.now();
  const [rep] = await aggregatePeriods(deps, [PERIOD]);
  const ms = performance.now() - t0;
  const usage = process.resourceUsage();
  const rss = usage.maxRSS / 1024;
  const cpu = (usage.userCPUTime + usage.systemCPUTime) / 1e6;
  console.log(
    JSON.stringify({
      seconds: +(ms / 1000).toFixed(1),
      cpuSeconds: +cpu.toFixed(1),
      peakRssMiB: Math.round(rss),
      groups: rep?.groups,
      files: rep?.files.map((f) => `${f.name}: ${f.rows} rows, ${(f.bytes / 1e6).toFixed(1)} MB`),
    }),
  );
}

async function main(): Promise<void> {
  if (o.child) return child();
  const ready = existsSync(join(dir, "ledger.json")) && (await readdir(dir)).length > 2;
  let reuse = false;
  if (ready) {
    const { readFile } = await import("node:fs/promises");
    const meta = JSON.parse(await readFile(join(dir, "ledger.json"), "utf8")) as {
      rows: number;
      groups: number;
    };
    reuse = meta.rows === rows && meta.groups === groups;
  }
  if (!reuse) {
    console.log(`generating ${rows} staged rows over ${groups} groups in ${dir} ...`);
    await generate();
  }
  console.log(`aggregating ${PERIOD}: ${rows} rows, ${groups} groups, ${groups * MEMBERS_PER_GROUP} members`);
  const args = ["--import", "tsx", ...(o.heap && o.heap !== "0" ? [`--max-old-space-size=${o.heap}`] : [])];
  args.push(
    new URL(import.meta.url).pathname,
    "--child",
    "--rows",
    String(rows),
    "--groups",
    String(groups),
    "--dir",
    dir,
    "--max-rows-per-pass",
    String(o["max-rows-per-pass"]),
  );
  const r = spawnSync(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`aggregation failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
  const result = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as {
    seconds: number;
    cpuSeconds: number;
    peakRssMiB: number;
  };
  console.log(r.stdout.trim());
  console.log(
    `time ${result.seconds} s (CPU ${result.cpuSeconds} s), peak RSS ${result.peakRssMiB} MiB (${result.peakRssMiB <= 1024 ? "fits" : "does NOT fit"} a 1 GB Lambda)`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
