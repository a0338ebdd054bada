/**
 * Publication (invariants 1 and 5) through the use case with in-memory ports: reports are written under
 * a run id, then the period manifest switches, then latest/; a run that fails midway leaves the previous
 * run visible; every manifest entry matches its object (rows, sha256); delivery order changes nothing.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { lambdaFanout, PartInvocationError } from "../../lib/adapters/lambda-fanout.ts";
import type { LedgerEntry, PeriodState, StagedObject } from "../../lib/adapters/ledger-store.ts";
import {
  type AggregateDeps,
  aggregatePeriods,
  LATEST_MANIFEST_KEY,
  periodManifestKey,
  type ReportManifest,
} from "../../lib/aggregate.ts";
import {
  type AggregationPlan,
  partJobSchema,
  passesOf,
  runPartJob,
  WORK_PREFIX,
} from "../../lib/aggregate-parts.ts";
import { ZonedCalendar } from "../../lib/domain/dates.ts";
import type { GroupMeta } from "../../lib/domain/membership.ts";
import { partOf, stagedKey } from "../../lib/domain/partition.ts";
import { membership } from "../support/membership.ts";

const silent = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

function memoryObjects() {
  const store = new Map<string, Buffer>();
  const writes: string[] = [];
  let failOn: ((key: string) => boolean) | null = null;
  return {
    store,
    writes,
    failWhen(f: ((key: string) => boolean) | null) {
      failOn = f;
    },
    async get(bucket: string, key: string) {
      const b = store.get(`${bucket}/${key}`);
      if (!b) throw Object.assign(new Error(`no ${key}`), { name: "NoSuchKey" });
      const body = Readable.from([b]);
      return {
        body,
        destroy: () => body.destroy(),
        contentLength: b.length,
        contentEncoding: null,
        eTag: null,
      };
    },
    async getText(bucket: string, key: string) {
      return store.get(`${bucket}/${key}`)?.toString("utf8") ?? null;
    },
    async put(bucket: string, key: string, body: string | Uint8Array) {
      if (failOn?.(key)) throw new Error(`injected failure writing ${key}`);
      store.set(`${bucket}/${key}`, Buffer.from(body));
      writes.push(key);
    },
    async *list(bucket: string, prefix: string) {
      for (const k of [...store.keys()].sort())
        if (k.startsWith(`${bucket}/${prefix}`))
          yield { key: k.slice(bucket.length + 1), size: store.get(k)?.length ?? 0, eTag: "" };
    },
    async delete(bucket: string, key: string) {
      store.delete(`${bucket}/${key}`);
    },
  };
}

const group = (groupId: string): GroupMeta => ({
  groupId,
  externalId: null,
  name: `=cmd|' /C calc'!A0 ${groupId}`,
  status: "ACTIVE",
  programs: [{ programId: "1", loyaltyPoints: "12.5", currentSlab: "Gold" }],
  syncedAt: "2026-11-01T06:00:00.000Z",
});

/** Staged Points files: each a list of rows (event_id, user, date, alloc, ded, type, name, version). */
/** Each file is staged into `parts` key-hash parts (recorded in the ledger), or `partitions` (not recorded). */
function setup(
  files: { id: string; rows: string[][]; deliveredAt: string; parts?: number }[],
  partitions = 1,
) {
  const objects = memoryObjects();
  const entries: LedgerEntry[] = [];
  for (const [i, f] of files.entries()) {
    // Staged as ingestion does: one object per period of the rows' event dates.
    const staged: StagedObject[] = [];
    const fileParts = f.parts ?? partitions;
    const objectOf = (r: string[]) => `${(r[2] ?? "").slice(0, 7)}|${partOf(r[0] ?? "", fileParts)}`;
    for (const o of new Set(f.rows.map(objectOf))) {
      const [period = "", part = 0] = o.split("|").map((x, i) => (i === 0 ? x : Number(x))) as [
        string,
        number,
      ];
      const rows = f.rows.filter((r) => objectOf(r) === o);
      const key = stagedKey("points", period, part, f.id);
      const csv = [
        "event_id,user_id,event_date,allocated,deducted,deduction_type,event_name,version",
        ...rows.map((r) => r.join(",")),
      ].join("\n");
      objects.store.set(`exports/${key}`, Buffer.from(`${csv}\n`));
      staged.push({
        key,
        dataset: "points",
        period,
        part,
        rows: rows.length,
        ...(f.parts ? { parts: f.parts } : {}),
      });
    }
    entries.push({
      fileId: f.id,
      bucket: "exports",
      sourceKey: `exports/${f.id}.csv`,
      eTag: f.id,
      size: 1,
      sequencer: String(i),
      deliveredAt: f.deliveredAt,
      status: "COMMITTED",
      reason: null,
      attempts: 1,
      entries: [
        {
          name: `exports/${f.id}.csv`,
          template: "points",
          rowsRead: f.rows.length,
          rowsAccepted: f.rows.length,
          rowsRejected: 0,
          firstRejectReason: null,
          error: null,
          columns: [],
        },
      ],
      staged,
      periods: staged.map((o) => o.period),
      rejectsKey: null,
      startedAt: f.deliveredAt,
      finishedAt: f.deliveredAt,
    });
  }
  const periods = new Map<string, PeriodState>();
  const deps: AggregateDeps = {
    objects,
    ledger: {
      get: async (id) => entries.find((e) => e.fileId === id) ?? null,
      list: async () => entries,
      listPeriods: async () => [...periods.values()],
      getPeriod: async (p) => periods.get(p) ?? null,
      markReported: async (p, runId) => {
        periods.set(p, { period: p, dirtySince: null, lastRunId: runId, lastReportAt: null });
      },
      acquireAggregateLock: async () => true,
      releaseAggregateLock: async () => true,
    },
    membership: {
      listGroupMetas: async () => [group("1"), group("2")],
      listAllMemberships: async function* () {
        yield membership("1", "100");
        yield membership("2", "200");
      },
    },
    settings: {
      stagingBucket: "exports",
      reportsBucket: "reports",
      partitions,
      calendar: new ZonedCalendar("UTC"),
    },
    now: () => new Date("2026-11-02T00:00:00Z"),
    log: silent as never,
  };
  return { deps, objects };
}

const FILES = [
  {
    id: "a",
    deliveredAt: "2026-10-10T00:00:00.000Z",
    rows: [
      ["e1", "100", "2026-10-01", "1000", "0", "", "", "1"],
      ["e2", "200", "2026-10-02", "2500", "0", "", "", "1"],
    ],
  },
  {
    id: "b",
    deliveredAt: "2026-10-20T00:00:00.000Z",
    rows: [
      ["e1", "100", "2026-10-01", "3000", "0", "", "", "2"], // newer version of e1
      ["e3", "100", "2026-10-05", "0", "500", "redeemed", "", "1"],
    ],
  },
];

describe("publication is atomic per period (invariant 5)", () => {
  it("writes every file under the run, then the period manifest, then latest/", async () => {
    const { deps, objects } = setup(FILES);
    const [rep] = await aggregatePeriods(deps, ["2026-10"]);
    if (!rep) throw new Error("nothing published");
    const runPrefix = `reports/period=2026-10/run=${rep.runId}/`;
    const order = objects.writes;
    expect(order.slice(0, 7).every((k) => k.startsWith(runPrefix))).toBe(true);
    expect(order.slice(7)).toEqual([periodManifestKey("2026-10"), LATEST_MANIFEST_KEY]);
    const manifest = JSON.parse(
      (await objects.getText("reports", LATEST_MANIFEST_KEY)) ?? "",
    ) as ReportManifest;
    expect(manifest).toMatchObject({ period: "2026-10", runId: rep.runId, inputFiles: ["a", "b"] });
    expect(manifest.membershipSyncedAt).toBe("2026-11-01T06:00:00.000Z");
    expect(manifest.totals).toEqual({
      points_awarded: "5.5",
      points_redeemed: "0.5",
      group_wallet_redemptions: "",
      group_wallet_points_redeemed: "",
    });
    for (const f of manifest.files) {
      const body = objects.store.get(`reports/${f.key}`);
      expect(body, f.key).toBeDefined();
      expect(
        createHash("sha256")
          .update(body ?? "")
          .digest("hex"),
      ).toBe(f.sha256);
      expect(f.bytes).toBe(body?.length);
      if (f.name.endsWith(".csv")) expect(body?.toString().trimEnd().split("\r\n").length).toBe(f.rows + 1);
    }
    const csv = objects.store.get(`reports/${runPrefix}group_summary.csv`)?.toString() ?? "";
    // Formula-like text is prefixed with '; no event-name column: group_transaction_points is empty, not 0;
    // no Redemption Summary / Members / rewards exports: their figures are empty too.
    expect(csv.split("\r\n")[1]).toBe(
      "2026-10,1,,'=cmd|' /C calc'!A0 1,ACTIVE,1,1,3,,0.5,0,0,0,,,,,,,,12.5,Gold,",
    );
  });

  it("a run that fails midway leaves the previous run visible and whole", async () => {
    const { deps, objects } = setup(FILES);
    const [first] = await aggregatePeriods(deps, ["2026-10"]);
    const before = await objects.getText("reports", periodManifestKey("2026-10"));
    const latestBefore = await objects.getText("reports", LATEST_MANIFEST_KEY);
    objects.failWhen((k) => k.endsWith("/group_members.csv"));
    await expect(aggregatePeriods(deps, ["2026-10"])).rejects.toThrow(/injected failure/);
    expect(await objects.getText("reports", periodManifestKey("2026-10"))).toBe(before);
    expect(await objects.getText("reports", LATEST_MANIFEST_KEY)).toBe(latestBefore);
    const m = JSON.parse(before ?? "") as ReportManifest;
    expect(m.runId).toBe(first?.runId);
    for (const f of m.files) expect(objects.store.has(`reports/${f.key}`)).toBe(true);
  });
});

describe("delivery order does not change the report (invariant 1)", () => {
  it("any order of the files (and a duplicate delivery) gives the same report", async () => {
    const render = async (files: typeof FILES) => {
      const { deps, objects } = setup(files);
      const [rep] = await aggregatePeriods(deps, ["2026-10"]);
      return ["group_summary.csv", "group_members.csv", "unattributed_members.csv"].map(
        (n) => objects.store.get(`reports/reports/period=2026-10/run=${rep?.runId}/${n}`)?.toString() ?? "",
      );
    };
    const want = await render(FILES);
    await fc.assert(
      fc.asyncProperty(fc.shuffledSubarray([0, 1, 2], { minLength: 3, maxLength: 3 }), async (order) => {
        const all = [...FILES, { ...FILES[0], id: "a-again" } as (typeof FILES)[number]];
        const files = order
          .map((i) => all[i] ?? all[0])
          .filter((f): f is (typeof FILES)[number] => f !== undefined);
        expect(await render(files)).toEqual(want);
      }),
      { numRuns: 6 },
    );
  });
});

describe("newest version wins across periods (invariant 2)", () => {
  // e1 was first sent dated in October; a later file re-sends it, corrected, dated in November.
  const MOVED = [
    FILES[0] as (typeof FILES)[number],
    {
      id: "c",
      deliveredAt: "2026-11-05T00:00:00.000Z",
      rows: [["e1", "100", "2026-11-03", "4000", "0", "", "", "2"]],
    },
  ];
  const summary = async (objects: ReturnType<typeof memoryObjects>, period: string) => {
    const m = JSON.parse(
      (await objects.getText("reports", periodManifestKey(period))) ?? "{}",
    ) as ReportManifest;
    const key = m.files.find((f) => f.name === "group_summary.csv")?.key ?? "";
    return (objects.store.get(`reports/${key}`)?.toString() ?? "").split("\r\n").slice(1, 3);
  };

  it("a row whose event date moved to another month counts in the new month only", async () => {
    const { deps, objects } = setup(MOVED);
    await aggregatePeriods(deps, ["2026-10", "2026-11"]);
    // October: only e2 (2.5, group 2); e1's old version (1.0, group 1) no longer counts.
    expect((await summary(objects, "2026-10")).map((l) => l.split(",")[7])).toEqual(["0", "2.5"]);
    expect((await summary(objects, "2026-11")).map((l) => l.split(",")[7])).toEqual(["4", "0"]);
  });

  it("re-publishes the month a row left when only the month it moved to is dirty", async () => {
    const { deps, objects } = setup(MOVED);
    const published = await aggregatePeriods(deps, ["2026-11"]);
    expect(published.map((p) => p.period).sort()).toEqual(["2026-10", "2026-11"]);
    expect((await summary(objects, "2026-10")).map((l) => l.split(",")[7])).toEqual(["0", "2.5"]);
  });

  it("an older version dated in another month never replaces the newer one (any order)", async () => {
    const reversed = [MOVED[1], MOVED[0]] as typeof MOVED;
    const { deps, objects } = setup(reversed);
    await aggregatePeriods(deps, ["2026-10", "2026-11"]);
    expect((await summary(objects, "2026-10")).map((l) => l.split(",")[7])).toEqual(["0", "2.5"]);
    expect((await summary(objects, "2026-11")).map((l) => l.split(",")[7])).toEqual(["4", "0"]);
  });
});

describe("the aggregation fanned out over Lambda gives the same reports (issue 7)", () => {
  const ALL_FILES = [
    ...FILES,
    {
      id: "c",
      deliveredAt: "2026-11-05T00:00:00.000Z",
      rows: [
        ["e1", "100", "2026-11-03", "4000", "0", "", "", "3"], // e1 moved to November
        ["e4", "200", "2026-11-04", "0", "750", "redeemed", "", "1"],
        ["e5", "300", "2026-11-04", "125", "0", "", "", "1"], // no group: unattributed
      ],
    },
  ];
  const PARTS = 4;
  const reports = async (objects: ReturnType<typeof memoryObjects>, period: string) => {
    const m = JSON.parse(
      (await objects.getText("reports", periodManifestKey(period))) ?? "{}",
    ) as ReportManifest;
    return m.files
      .filter((f) => f.name.endsWith(".csv"))
      .map((f) => [f.name, objects.store.get(`reports/${f.key}`)?.toString()]);
  };
  /** A Lambda client whose Invoke runs the part function's use case on the same objects. */
  const fakeLambda = (objects: ReturnType<typeof memoryObjects>, fail?: (part: number) => boolean) => {
    const lambda = new LambdaClient({ region: "us-east-1" });
    const mock = mockClient(lambda);
    mock.on(InvokeCommand).callsFake(async (input: { FunctionName: string; Payload: Uint8Array }) => {
      const job = partJobSchema.parse(JSON.parse(Buffer.from(input.Payload).toString("utf8")));
      if (fail?.(job.part))
        return {
          StatusCode: 200,
          FunctionError: "Unhandled",
          Payload: Buffer.from(JSON.stringify({ errorType: "Error", errorMessage: "out of memory" })),
        };
      return { StatusCode: 200, Payload: Buffer.from(JSON.stringify(await runPartJob(objects, job))) };
    });
    return { lambda, mock };
  };

  it("equals the in-process reports, file by file, and leaves no work objects", async () => {
    const local = setup(ALL_FILES, PARTS);
    await aggregatePeriods(local.deps, ["2026-10", "2026-11"]);
    const fanned = setup(ALL_FILES, PARTS);
    const { lambda, mock } = fakeLambda(fanned.objects);
    fanned.deps.fanout = lambdaFanout({
      lambda,
      functionName: "glr-aggregate-part",
      objects: fanned.objects,
      bucket: "exports",
      minRows: 1,
      concurrency: 3,
      now: fanned.deps.now,
    });
    await aggregatePeriods(fanned.deps, ["2026-10", "2026-11"]);
    const calls = mock.commandCalls(InvokeCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => c.FunctionName)).toEqual(Array(PARTS).fill("glr-aggregate-part"));
    expect(
      calls
        .map((c) => partJobSchema.parse(JSON.parse(Buffer.from(c.Payload as Uint8Array).toString())).part)
        .sort(),
    ).toEqual([0, 1, 2, 3]);
    for (const period of ["2026-10", "2026-11"]) {
      const want = await reports(local.objects, period);
      expect(want.length).toBe(4);
      expect(await reports(fanned.objects, period)).toEqual(want);
    }
    expect([...fanned.objects.store.keys()].filter((k) => k.includes(WORK_PREFIX))).toEqual([]);
  });

  it("a failed part fails the run: the previous reports stay, the error names the part, work objects are gone", async () => {
    const { deps, objects } = setup(ALL_FILES, PARTS);
    await aggregatePeriods(deps, ["2026-10", "2026-11"]);
    const before = await objects.getText("reports", periodManifestKey("2026-11"));
    const { lambda } = fakeLambda(objects, (part) => part === 2);
    deps.fanout = lambdaFanout({
      lambda,
      functionName: "glr-aggregate-part",
      objects,
      bucket: "exports",
      minRows: 1,
      concurrency: 2,
      now: deps.now,
    });
    const err = await aggregatePeriods(deps, ["2026-11"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PartInvocationError);
    expect(String(err)).toContain("aggregate part 2 failed: Error: out of memory");
    expect(await objects.getText("reports", periodManifestKey("2026-11"))).toBe(before);
    expect([...objects.store.keys()].filter((k) => k.includes(WORK_PREFIX))).toEqual([]);
  });

  it("a part bigger than maxRowsPerPass is upserted in slices of its keys: the same reports", async () => {
    const local = setup(ALL_FILES, 2);
    await aggregatePeriods(local.deps, ["2026-10", "2026-11"]);
    const sliced = setup(ALL_FILES, 2);
    sliced.deps.settings.maxRowsPerPass = 1;
    let reads = 0;
    const get = sliced.deps.objects.get.bind(sliced.deps.objects);
    sliced.deps.objects.get = (bucket, key) => {
      if (key.startsWith("staging/")) reads++;
      return get(bucket, key);
    };
    await aggregatePeriods(sliced.deps, ["2026-10", "2026-11"]);
    const objectsPerRun = [...sliced.objects.store.keys()].filter((k) =>
      k.startsWith("exports/staging/"),
    ).length;
    expect(reads).toBeGreaterThan(objectsPerRun); // each object read once per slice of its part
    for (const period of ["2026-10", "2026-11"])
      expect(await reports(sliced.objects, period)).toEqual(await reports(local.objects, period));
  });

  it("in process, consecutive parts that fit maxRowsPerPass are one pass; a bigger part is a pass alone", () => {
    const staged = (part: number, rows: number) => ({
      key: `staging/points/period=2026-10/part=${part}/f.csv.gz`,
      dataset: "points" as const,
      period: "2026-10",
      part,
      rows,
    });
    const plan = {
      parts: 8,
      maxRowsPerPass: 6,
      files: [
        // part 9 of a file staged in 16 parts is part 1 of this run's 8
        { fileId: "a", deliveredAt: "", staged: [staged(0, 3), staged(2, 5), staged(3, 2), staged(4, 9)] },
        { fileId: "b", deliveredAt: "", staged: [staged(5, 1), staged(9, 0), staged(14, 1), staged(7, 1)] },
      ],
    } as unknown as AggregationPlan;
    expect(passesOf(plan)).toEqual([[0, 1], [2], [3], [4], [5, 6, 7]]);
    expect(passesOf({ ...plan, maxRowsPerPass: 8 })).toEqual([[0, 1, 2], [3], [4], [5, 6, 7]]); // up to, inclusive
    expect(passesOf({ ...plan, maxRowsPerPass: 1_000 })).toEqual([[0, 1, 2, 3, 4, 5, 6, 7]]);
  });

  it("parts read together in one pass give the same reports as a pass per part", async () => {
    const perPart = setup(ALL_FILES, PARTS);
    perPart.deps.settings.maxRowsPerPass = 1;
    await aggregatePeriods(perPart.deps, ["2026-10", "2026-11"]);
    const together = setup(ALL_FILES, PARTS);
    const said: string[] = [];
    together.deps.progress = (line) => said.push(line.trim());
    await aggregatePeriods(together.deps, ["2026-10", "2026-11"]);
    const passes = said.filter((l) => l.startsWith("part"));
    expect(passes).toHaveLength(1);
    expect(passes[0]).toMatch(new RegExp(`^parts 1-${PARTS}/${PARTS}: \\d+ rows$`));
    for (const period of ["2026-10", "2026-11"])
      expect(await reports(together.objects, period)).toEqual(await reports(perPart.objects, period));
  });

  it("a run smaller than the fan-out threshold stays in process", async () => {
    const { deps, objects } = setup(ALL_FILES, PARTS);
    const { lambda, mock } = fakeLambda(objects);
    deps.fanout = lambdaFanout({
      lambda,
      functionName: "glr-aggregate-part",
      objects,
      bucket: "exports",
      minRows: 1_000,
      concurrency: 2,
      now: deps.now,
    });
    expect((await aggregatePeriods(deps, ["2026-11"])).map((p) => p.period)).toEqual(["2026-10", "2026-11"]);
    expect(mock.commandCalls(InvokeCommand)).toHaveLength(0);
  });
});

describe("staged objects expired by a lifecycle rule (stagingExpirationDays)", () => {
  const TWO_MONTHS = [
    FILES[0] as (typeof FILES)[number],
    {
      id: "n",
      deliveredAt: "2026-11-05T00:00:00.000Z",
      rows: [["e9", "100", "2026-11-03", "4000", "0", "", "", "1"]],
    },
  ];
  const drop = (objects: ReturnType<typeof memoryObjects>, period: string) => {
    for (const k of [...objects.store.keys()]) if (k.includes(`/period=${period}/`)) objects.store.delete(k);
  };

  it("another period's expired object is skipped, with a warning: the wanted period is published", async () => {
    const { deps, objects } = setup(TWO_MONTHS);
    const warnings: string[] = [];
    deps.log = { ...silent, warn: (msg: string) => warnings.push(msg) } as never;
    drop(objects, "2026-10");
    expect((await aggregatePeriods(deps, ["2026-11"])).map((p) => p.period)).toEqual(["2026-11"]);
    expect(warnings).toContain("staged objects of other periods are gone (expired); skipped");
  });

  it("an expired object of a period being published fails the run, naming the object", async () => {
    const { deps, objects } = setup(TWO_MONTHS);
    drop(objects, "2026-10");
    await expect(aggregatePeriods(deps, ["2026-10"])).rejects.toThrow(
      /staged object staging\/points\/period=2026-10\/part=00\/a\.csv\.gz is gone/,
    );
  });
});

describe("files staged with different part counts (STAGING_PARTITIONS changed)", () => {
  it("versions of one key in differently partitioned files still meet: nothing lost, nothing counted twice", async () => {
    const csvOf = async (files: Parameters<typeof setup>[0], partitions: number) => {
      const { deps, objects } = setup(files, partitions);
      const [rep] = await aggregatePeriods(deps, ["2026-10"]);
      const key = rep?.files.find((f) => f.name === "group_summary.csv")?.key ?? "";
      return objects.store.get(`reports/${key}`)?.toString();
    };
    const want = await csvOf(FILES, 1);
    // Some key lands in part 2 or 3 of 4, a part that a 2-part layout does not have.
    expect(["e1", "e2", "e3"].some((k) => partOf(k, 4) >= 2)).toBe(true);
    const mixed = [
      { ...(FILES[0] as (typeof FILES)[number]), parts: 4 },
      { ...(FILES[1] as (typeof FILES)[number]), parts: 2 },
    ];
    expect(await csvOf(mixed, 2)).toBe(want);
    expect(await csvOf(mixed, 4)).toBe(want);
    // Entries written before the count was recorded are taken as the configured count.
    expect(
      await csvOf(
        [FILES[0] as (typeof FILES)[number], { ...(FILES[1] as (typeof FILES)[number]), parts: 4 }],
        2,
      ),
    ).toBe(want);
  });

  it("part counts that do not divide each other are refused with a clear error", async () => {
    const { deps } = setup(
      [
        { ...(FILES[0] as (typeof FILES)[number]), parts: 3 },
        { ...(FILES[1] as (typeof FILES)[number]), parts: 2 },
      ],
      2,
    );
    await expect(aggregatePeriods(deps, ["2026-10"])).rejects.toThrow(
      /staged files use 2 and 3 key-hash parts/,
    );
  });
});
