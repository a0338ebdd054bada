/**
 * infra/athena/group_summary.sql on DuckDB against the Lambda's aggregation (aggregatePeriods with
 * in-memory ports) on a hand-made case that the e2e sample does not reach: default group vs numeric
 * order ("9" before "10"), a first-seen-exited membership, an earlier stint and a rejoin without joinedOn
 * (the floor), an exit instant that is the next day in the report time zone, version ties broken by
 * delivery time then file id, a re-sent row whose event date moved to another month, a superseded and a failed delivery whose staged objects are still there,
 * negative decimals, a period with rewards only, Members newest overall, wallets with an unparseable
 * balance or no program, and the empty figures of exports that cannot supply them.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGroupSummaryOnDuckDb } from "../../infra/athena/duckdb.ts";
import { snapshotFiles } from "../../infra/athena/snapshot.ts";
import type { LedgerEntry, LedgerStatus, StagedObject } from "../../lib/adapters/ledger-store.ts";
import { type AggregateDeps, aggregatePeriods } from "../../lib/aggregate.ts";
import { ZonedCalendar } from "../../lib/domain/dates.ts";
import type { GroupMeta } from "../../lib/domain/membership.ts";
import { STAGED_COLUMNS } from "../../lib/domain/normalize.ts";
import { partOf } from "../../lib/domain/partition.ts";
import { membership } from "../support/membership.ts";

const TZ = "Asia/Kolkata";
const PARTS = 2;
type Dataset = keyof typeof STAGED_COLUMNS;

interface FileSpec {
  id: string;
  source: string;
  sequencer: string;
  deliveredAt: string;
  status?: LedgerStatus;
  dataset: Dataset;
  rows: string[][];
  columns?: string[];
}

const group = (groupId: string, programs: GroupMeta["programs"]): GroupMeta => ({
  groupId,
  externalId: groupId === "1" ? null : `EXT-${groupId}`,
  name: `Group, "${groupId}"`,
  status: groupId === "9" ? "INACTIVE" : "ACTIVE",
  programs,
  syncedAt: "2026-11-01T06:00:00.000Z",
});

const GROUPS = [
  group("1", [{ programId: "1", loyaltyPoints: "12.5", currentSlab: "Gold" }]),
  group("2", [{ programId: "1", loyaltyPoints: "-3.25", currentSlab: null }]),
  group("9", []),
  group("10", [
    { programId: "1", loyaltyPoints: "not a number", currentSlab: "Silver" },
    { programId: "2", loyaltyPoints: "100", currentSlab: "Bronze" },
  ]),
];

const MEMBERSHIPS = [
  // u100: default group 10 wins over 2
  membership("10", "100", { defaultGroup: true }),
  membership("2", "100"),
  // u101: no default; 9 is numerically smaller than 10
  membership("10", "101"),
  membership("9", "101"),
  // u102: first seen exited: never counts
  membership("1", "102", { active: false, firstSeenExited: true, exitSeenAt: "2026-10-30T00:00:00Z" }),
  // u103: earlier stint Aug 1 -> Sep 10, rejoined without joinedOn: counts again from Sep 10 only
  membership("1", "103", {
    joinedOn: null,
    previousStints: [{ joinedOn: "2026-08-01", exitSeenAt: "2026-09-10T01:00:00Z" }],
  }),
  // u104: exit seen 2026-09-19T20:00Z = Sep 20 in Kolkata: counts until Sep 19
  membership("2", "104", { active: false, joinedOn: "2026-09-01", exitSeenAt: "2026-09-19T20:00:00Z" }),
  // u105: joined Sep 15
  membership("1", "105", { joinedOn: "2026-09-15" }),
];

const P = (
  id: string,
  user: string,
  date: string,
  alloc: string,
  ded: string,
  type: string,
  name: string,
  v: string,
) => [id, user, date, alloc, ded, type, name, v];

function files(full: boolean): FileSpec[] {
  const eventName = full ? ["event_name"] : [];
  const out: FileSpec[] = [
    {
      id: "f-a",
      source: "exports/points/a.csv",
      sequencer: "01",
      deliveredAt: "2026-10-01T00:00:00.000Z",
      dataset: "points",
      columns: eventName,
      rows: [
        P("e1", "100", "2026-09-02", "1000", "", "", "grouptransactionadd", "5"),
        P("e2", "101", "2026-09-03", "2000", "", "", "transactionadd", "7"),
        P("e3", "103", "2026-07-20", "300", "", "", "", "9"),
        P("e4", "103", "2026-09-05", "400", "", "", "", "1"),
        P("e5", "103", "2026-09-11", "-1500", "", "", "", "1"),
        P("e6", "104", "2026-09-19", "", "250", "expired", "", "1"),
        P("e7", "104", "2026-09-20", "", "125", "redeemed", "", "1"),
        P("e8", "105", "2026-09-14", "", "10", "return", "", "1"),
        P("e9", "105", "2026-09-15", "", "20", "redemption_reversal", "", "1"),
        P("e10", "102", "2026-09-16", "999", "", "", "grouptransactionadd", "1"),
        P("e11", "100", "2026-09-17", "", "1", "return_historical", "", "1"),
      ],
    },
    {
      // e1: same version, delivered later: wins; e3: older version: loses to f-a's
      id: "f-b",
      source: "exports/points/b.csv",
      sequencer: "02",
      deliveredAt: "2026-10-02T00:00:00.000Z",
      dataset: "points",
      columns: eventName,
      rows: [
        P("e1", "100", "2026-09-02", "1111", "", "", "grouptransactionadd", "5"),
        P("e3", "103", "2026-07-20", "77", "", "", "", "8"),
        P("e12", "100", "2026-09-21", "5", "", "", "", "3"),
        // e4 re-sent with its event date moved to October: it no longer counts in September
        P("e4", "103", "2026-10-06", "450", "", "", "", "2"),
      ],
    },
    {
      // e12: same version and delivery as f-c2: the greater file id wins
      id: "f-c1",
      source: "exports/points/c1.csv",
      sequencer: "03",
      deliveredAt: "2026-10-03T00:00:00.000Z",
      dataset: "points",
      columns: eventName,
      rows: [P("e12", "100", "2026-09-21", "6", "", "", "", "4")],
    },
    {
      id: "f-c2",
      source: "exports/points/c2.csv",
      sequencer: "04",
      deliveredAt: "2026-10-03T00:00:00.000Z",
      dataset: "points",
      columns: eventName,
      rows: [P("e12", "100", "2026-09-21", "7", "", "", "", "4")],
    },
    {
      // superseded by f-d-new (sequencer FF < 100 once padded): its rows must not count
      id: "f-d-old",
      source: "exports/points/d.csv",
      sequencer: "FF",
      deliveredAt: "2026-10-05T00:00:00.000Z",
      dataset: "points",
      columns: eventName,
      rows: [P("e20", "100", "2026-09-25", "50000", "", "", "", "99")],
    },
    {
      id: "f-d-new",
      source: "exports/points/d.csv",
      sequencer: "100",
      deliveredAt: "2026-10-04T00:00:00.000Z",
      dataset: "points",
      columns: eventName,
      rows: [P("e20", "100", "2026-09-25", "20", "", "", "", "1")],
    },
    {
      id: "f-failed",
      source: "exports/points/e.csv",
      sequencer: "05",
      deliveredAt: "2026-10-06T00:00:00.000Z",
      status: "FAILED",
      dataset: "points",
      columns: eventName,
      rows: [P("e30", "100", "2026-09-26", "70000", "", "", "", "1")],
    },
    {
      id: "f-rw",
      source: "exports/rewards/r.csv",
      sequencer: "06",
      deliveredAt: "2026-10-07T00:00:00.000Z",
      dataset: "rewards",
      rows: [
        ["r1", "100", "2026-09-03", "1", "1"],
        ["r2", "101", "2026-09-04", "0", "1"],
        ["r3", "101", "2026-10-04", "1", "1"],
      ],
    },
  ];
  if (!full) return out;
  out.push(
    {
      id: "f-rs",
      source: "exports/prs/a.csv",
      sequencer: "07",
      deliveredAt: "2026-10-08T00:00:00.000Z",
      dataset: "points_redemption_summary",
      rows: [
        ["s1", "100", "2026-09-05", "1500", "group_redemption", "1"],
        ["s2", "101", "2026-09-06", "250500", "redemption", "1"],
        ["s3", "105", "2026-09-16", "75", "redeemed", "1"],
        ["s4", "102", "2026-09-16", "75", "group_redemption", "1"],
      ],
    },
    {
      id: "f-m1",
      source: "exports/members/m1.csv",
      sequencer: "08",
      deliveredAt: "2026-10-09T00:00:00.000Z",
      dataset: "members",
      rows: [
        ["100", "1000", "5000", "12345", "Gold", "2"],
        ["101", "-500", "", "10", "", "1"],
        ["105", "1", "2", "3", "Silver", "1"],
      ],
    },
    {
      id: "f-m2",
      source: "exports/members/m2.csv",
      sequencer: "09",
      deliveredAt: "2026-10-10T00:00:00.000Z",
      dataset: "members",
      rows: [
        ["100", "9", "9", "9", "Gold", "1"],
        ["105", "4", "5", "6", "Silver", "2"],
      ],
    },
  );
  return out;
}

const periodOf = (f: FileSpec, row: string[]) =>
  f.dataset === "members" ? (f.id === "f-m1" ? "2026-09" : "2026-10") : (row[2] ?? "").slice(0, 7);

/** Writes the staged objects under `root` (Hive layout) and returns the ledger entries. */
async function stage(root: string, specs: readonly FileSpec[]): Promise<LedgerEntry[]> {
  const entries: LedgerEntry[] = [];
  for (const f of specs) {
    const byObject = new Map<string, { period: string; part: number; rows: string[][] }>();
    for (const row of f.rows) {
      const period = periodOf(f, row);
      const part = partOf(row[0] ?? "", PARTS);
      const k = `${period}/${part}`;
      const o = byObject.get(k) ?? { period, part, rows: [] };
      o.rows.push(row);
      byObject.set(k, o);
    }
    const staged: StagedObject[] = [];
    for (const o of byObject.values()) {
      const key = `staging/${f.dataset}/period=${o.period}/part=0${o.part}/${f.id}.csv.gz`;
      const text = [STAGED_COLUMNS[f.dataset].join(","), ...o.rows.map((r) => r.join(","))].join("\n");
      const path = join(root, ...key.split("/"));
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, gzipSync(`${text}\n`));
      staged.push({ key, dataset: f.dataset, period: o.period, part: o.part, rows: o.rows.length });
    }
    entries.push({
      fileId: f.id,
      bucket: "exports",
      sourceKey: f.source,
      eTag: f.id,
      size: 1,
      sequencer: f.sequencer,
      deliveredAt: f.deliveredAt,
      status: f.status ?? "COMMITTED",
      reason: null,
      attempts: 1,
      entries: [
        {
          name: f.source,
          template: f.dataset,
          rowsRead: f.rows.length,
          rowsAccepted: f.rows.length,
          rowsRejected: 0,
          firstRejectReason: null,
          error: null,
          columns: f.columns ?? [],
        },
      ],
      staged,
      periods: [...new Set(staged.map((s) => s.period))],
      rejectsKey: null,
      startedAt: f.deliveredAt,
      finishedAt: f.deliveredAt,
    });
  }
  return entries;
}

/** The Lambda's group_summary rows for every period, through aggregatePeriods on in-memory ports. */
async function lambdaRows(root: string, entries: readonly LedgerEntry[]): Promise<Record<string, string>[]> {
  const reports = new Map<string, Buffer>();
  const deps: AggregateDeps = {
    objects: {
      async get(_bucket: string, key: string) {
        const b = await readFile(join(root, ...key.split("/")));
        const body = Readable.from([b]);
        return {
          body,
          destroy: () => body.destroy(),
          contentLength: b.length,
          contentEncoding: null,
          eTag: null,
        };
      },
      getText: async (bucket: string, key: string) =>
        reports.get(`${bucket}/${key}`)?.toString("utf8") ?? null,
      put: async (bucket: string, key: string, body: string | Uint8Array) => {
        reports.set(`${bucket}/${key}`, Buffer.from(body));
      },
      async *list() {},
      delete: async () => undefined,
    },
    ledger: {
      get: async (id) => entries.find((e) => e.fileId === id) ?? null,
      list: async () => [...entries],
      listPeriods: async () => [],
      getPeriod: async () => null,
      markReported: async () => undefined,
      acquireAggregateLock: async () => true,
      releaseAggregateLock: async () => true,
    },
    membership: {
      listGroupMetas: async () => GROUPS,
      listAllMemberships: async function* () {
        yield* MEMBERSHIPS;
      },
    },
    settings: {
      stagingBucket: "exports",
      reportsBucket: "reports",
      partitions: PARTS,
      calendar: new ZonedCalendar(TZ),
    },
    now: () => new Date(),
    log: {
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
      debug: () => undefined,
    } as never,
  };
  const published = await aggregatePeriods(deps, ["2026-07", "2026-09", "2026-10"]);
  const rows: Record<string, string>[] = [];
  for (const p of published) {
    const key = p.files.find((f) => f.name === "group_summary.json")?.key ?? "";
    const body = reports.get(`reports/${key}`)?.toString("utf8") ?? "{}";
    rows.push(...(JSON.parse(body) as { rows: Record<string, string>[] }).rows);
  }
  return rows;
}

describe.each([
  ["every export", true],
  ["Points and rewards only, without an event-name column", false],
])("group_summary.sql equals the Lambda on edge cases: %s", (_name, full) => {
  let root: string;
  let entries: LedgerEntry[];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "glr-athena-edges-"));
    entries = await stage(root, files(full));
    const snap = snapshotFiles({ ledger: entries, memberships: MEMBERSHIPS, groups: GROUPS, timeZone: TZ });
    for (const [rel, body] of Object.entries(snap)) {
      const path = join(root, ...rel.split("/"));
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, body);
    }
  });

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("gives the same rows, in the same order, figure by figure", async () => {
    const want = await lambdaRows(root, entries);
    const got = await runGroupSummaryOnDuckDb(root);
    expect(new Set(want.map((r) => r.period))).toEqual(new Set(["2026-07", "2026-09", "2026-10"]));
    expect(got).toHaveLength(want.length);
    for (const [i, w] of want.entries()) expect({ i, ...got[i] }).toEqual({ i, ...w });
  });
});
