/**
 * The ingest use case through its ports (a file-backed object store and an in-memory ledger that follow
 * the S3 and DynamoDB adapters' contracts): every packaging, header style, oddity and delivery pattern of
 * issue 3, each from a fixture file. The staged result is read the way the aggregation reads it
 * (`currentFiles`, then the newest row version per key), so "equals a single clean delivery" is checked
 * on what the reports would count.
 */
import { readFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { splitCsvLine } from "../../lib/domain/normalize.ts";
import { fileIdOf } from "../../lib/ingest.ts";
import { BUCKET, IngestHarness } from "../support/ingest-harness.ts";

const fixture = (name: string) => readFile(new URL(`../fixtures/ingest/${name}`, import.meta.url));
const unpackFixture = (name: string) => readFile(new URL(`../fixtures/unpack/${name}`, import.meta.url));

const now = () => new Date("2024-04-02T00:00:00Z");
let h: IngestHarness;
beforeEach(async () => {
  h = await IngestHarness.create({ now });
});
afterEach(async () => {
  expect(h.bodiesReleased()).toBe(true);
  await h.remove();
});

const v = (y: number, mo: number, d: number, hh: number, mm: number, ss: number) =>
  String(Date.UTC(y, mo - 1, d, hh, mm, ss));
const POINTS_EXPECTED = [
  `2024-03|9001,000123,2024-03-01,12500,,,transactionadd,${v(2024, 3, 1, 10, 15, 0)}`,
  `2024-03|9002,9223372036854775807,2024-03-02,0,3250,redeemed,,${v(2024, 3, 2, 9, 0, 0)}`,
  `2024-03|9003,000125,2024-03-31,7000,0,,grouptransactionadd,${v(2024, 3, 31, 23, 59, 59)}`,
  `2024-04|9004,000126,2024-04-01,1001,,expired,"promo, ""spring""\nline two",${v(2024, 4, 1, 0, 0, 1)}`,
];

describe("packaging and text", () => {
  it("stages a plain CSV: ids as strings, exact decimals, blank numbers stay blank, quoted fields", async () => {
    const out = await h.ingest(await h.put("exports/points/points.csv", await fixture("points.csv")));
    expect(out).toMatchObject({
      status: "COMMITTED",
      rowsRead: 4,
      rowsAccepted: 4,
      rowsRejected: 0,
      periods: ["2024-03", "2024-04"],
    });
    expect(await h.effective()).toEqual({ points: POINTS_EXPECTED });
    const entry = await h.ledger.get(out.fileId);
    expect(entry?.entries).toEqual([
      expect.objectContaining({
        name: "exports/points/points.csv",
        template: "points",
        rowsRead: 4,
        rowsAccepted: 4,
        rowsRejected: 0,
        columns: ["event_name"],
      }),
    ]);
    expect(h.ledger.marks.map((m) => m.period)).toEqual(["2024-03", "2024-04"]);
  });

  it.each([
    ["BOM and CRLF", "points-crlf-bom.csv", 64 * 1024],
    ["BOM and CRLF in 1-byte chunks (CR/LF pairs split across chunks)", "points-crlf-bom.csv", 1],
    ["LF in 1-byte chunks", "points.csv", 1],
    ["gzip without an extension (magic bytes)", "points-export_2024-03-05-10-00-00", 64 * 1024],
    ["gzip in 1-byte chunks", "points-export_2024-03-05-10-00-00", 1],
  ])("gives the same staged rows for %s", async (_, name, chunkSize) => {
    h.objects.chunkSize = chunkSize;
    const out = await h.ingest(await h.put(`exports/points/${name}`, await fixture(name)));
    expect(out).toMatchObject({ status: "COMMITTED", rowsRead: 4, rowsAccepted: 4 });
    // A line end inside a quoted field is data, kept as delivered (CRLF in a CRLF file).
    const want = name.includes("crlf")
      ? POINTS_EXPECTED.map((l) => l.replace("\nline", "\r\nline"))
      : POINTS_EXPECTED;
    expect(await h.effective()).toEqual({ points: want });
  });

  it("reads an object stored with Content-Encoding gzip (the body stays gzip bytes)", async () => {
    const gz = gzipSync(await fixture("points.csv"));
    const out = await h.ingest(await h.put("exports/points/points.csv", gz, { contentEncoding: "gzip" }));
    expect(out).toMatchObject({ status: "COMMITTED", rowsAccepted: 4 });
    expect(await h.effective()).toEqual({ points: POINTS_EXPECTED });
  });

  it("stages every CSV of a zip under its own entry name and template", async () => {
    const out = await h.ingest(
      await h.put("exports/mixed/export.zip", await fixture("points-and-summary.zip")),
    );
    expect(out).toMatchObject({ status: "COMMITTED", rowsRead: 7, rowsAccepted: 7, rowsRejected: 0 });
    const entry = await h.ledger.get(out.fileId);
    expect(entry?.entries.map((e) => [e.name, e.template, e.rowsRead])).toEqual([
      ["exports/mixed/export.zip!export/points.csv", "points", 4],
      ["exports/mixed/export.zip!export/summary.csv", "points_redemption_summary", 3],
    ]);
    const eff = await h.effective();
    expect(eff.points).toEqual(POINTS_EXPECTED);
    expect(eff.points_redemption_summary).toHaveLength(3);
  });

  it("ingests the good CSV of a zip and records the unknown one as rejected as a whole", async () => {
    const out = await h.ingest(await h.put("exports/mixed/two.zip", await fixture("points-and-unknown.zip")));
    expect(out).toMatchObject({ status: "COMMITTED", rowsRead: 6, rowsAccepted: 4, rowsRejected: 2 });
    const entry = await h.ledger.get(out.fileId);
    expect(entry?.entries[1]).toMatchObject({
      template: null,
      rowsRead: 2,
      rowsRejected: 2,
      error: expect.stringMatching(/unknown header.*order_id/),
    });
  });

  it.each([
    ["bomb.zip", /ZIP_BOMB/],
    ["bomb.csv.gz", /ZIP_BOMB/],
    ["unsafe-path.zip", /ZIP_UNSAFE_PATH/],
    ["backslash-path.zip", /ZIP_UNSAFE_PATH/],
    ["nested.zip", /ZIP_NESTED/],
    ["encrypted.zip", /ZIP_ENCRYPTED/],
    ["truncated.zip", /ZIP_CORRUPT/],
    ["truncated.csv.gz", /GZIP_CORRUPT/],
  ])("rejects %s as a whole with a clear reason, without failing the run", async (name, reason) => {
    const out = await h.ingest(await h.put(`exports/x/${name}`, await unpackFixture(name)));
    expect(out.status).toBe("REJECTED");
    const entry = await h.ledger.get(out.fileId);
    expect(entry).toMatchObject({ status: "REJECTED", reason: expect.stringMatching(reason), staged: [] });
    // Nothing staged, so nothing accepted: read = rejected for every entry reached.
    for (const e of entry?.entries ?? []) expect([e.rowsAccepted, e.rowsRejected]).toEqual([0, e.rowsRead]);
    expect(h.ledger.marks).toEqual([]);
  });
});

describe("empty things never fail a run nor replace good data", () => {
  it.each([
    ["an empty object", "exports/points/points.csv", new Uint8Array(0), "empty object"],
    ["a folder marker", "exports/points/", new Uint8Array(0), "folder marker"],
    ["a header-only file", "exports/points/points.csv", null, "header only"],
    ["an empty zip", "exports/points/points.csv", "empty.zip", "no CSV entry"],
  ])("skips %s with its reason; the previous good version stays current", async (_, key, content, reason) => {
    const good = await h.ingest(await h.put("exports/points/points.csv", await fixture("points.csv")));
    expect(good.status).toBe("COMMITTED");
    const bytes =
      content === null
        ? await fixture("header-only.csv")
        : typeof content === "string"
          ? await unpackFixture(content)
          : content;
    const out = await h.ingest(await h.put(key, bytes));
    expect(out).toMatchObject({ status: "SKIPPED", reason: expect.stringContaining(reason) });
    expect((await h.ledger.get(out.fileId))?.reason).toContain(reason);
    expect(h.logs.some((l) => JSON.stringify(l.data).includes(reason))).toBe(true);
    expect(await h.effective()).toEqual({ points: POINTS_EXPECTED });
  });
});

describe("headers and templates", () => {
  it.each(["points-display.csv", "points-dimension.csv"])(
    "detects Points from %s and stages the same rows",
    async (name) => {
      const out = await h.ingest(await h.put(`exports/points/${name}`, await fixture(name)));
      expect(out).toMatchObject({ status: "COMMITTED", rowsAccepted: 4 });
      expect(await h.effective()).toEqual({ points: POINTS_EXPECTED });
    },
  );

  it("uses the configured column map for renamed columns", async () => {
    const obj = await h.put("exports/points/renamed.csv", await fixture("points-renamed.csv"));
    h.settings.columnMap = {
      Txn: "event_id",
      member: "dim_event_user_id",
      DAY: "dim_event_date_id",
      Awarded: "allocated_points",
      Used: "deducted_points",
      Kind: "dim_deduction_type_id",
    };
    const out = await h.ingest(obj);
    expect(out).toMatchObject({ status: "COMMITTED", rowsAccepted: 4 });
    expect(await h.effective()).toEqual({ points: POINTS_EXPECTED });
  });

  it("rejects an unknown header as a whole: reason in the ledger, rows counted, object untouched", async () => {
    const bytes = await fixture("unknown-header.csv");
    const obj = await h.put("exports/other/orders.csv", bytes);
    const out = await h.ingest(obj);
    expect(out).toMatchObject({ status: "REJECTED", rowsRead: 2, rowsAccepted: 0, rowsRejected: 2 });
    const entry = await h.ledger.get(out.fileId);
    expect(entry).toMatchObject({
      status: "REJECTED",
      reason: expect.stringMatching(/^unknown header \(no template matches\): order_id, customer, amount/),
      staged: [],
    });
    expect(entry?.entries[0]?.error).toBe(entry?.reason);
    expect(await h.objects.readBytes(BUCKET, "exports/other/orders.csv")).toEqual(bytes);
    expect(h.objects.written).toEqual([]);
  });

  it("a headerless file whose first line is personal data: rejected without echoing the line", async () => {
    const obj = await h.put("exports/other/contacts.csv", await fixture("headerless-personal.csv"));
    const out = await h.ingest(obj);
    const lines = h.logs.map((l) => JSON.stringify(l));
    // the first line is taken for a header; the rows after it are counted as rejected
    expect(out).toMatchObject({ status: "REJECTED", rowsRead: 1, rowsRejected: 1 });
    const entry = await h.ledger.get(out.fileId);
    expect(entry?.reason).toBe(
      "unknown header (no template matches): 3 columns; the first line looks like data, not a header (values not shown)",
    );
    for (const text of [entry?.reason ?? "", out.reason ?? "", ...lines])
      for (const pii of ["Jane", "919876543210", "jane.doe@example.com"]) expect(text).not.toContain(pii);
  });

  it("reads a header-rejected file again when it is delivered again after a column map fix", async () => {
    const obj = await h.put("exports/points/renamed.csv", await fixture("points-renamed.csv"));
    expect(await h.ingest(obj)).toMatchObject({ status: "REJECTED" });
    expect(await h.ingest(obj)).toMatchObject({ status: "REJECTED" }); // read again, not a duplicate
    h.settings.columnMap = {
      Txn: "event_id",
      Member: "dim_event_user_id",
      Day: "dim_event_date_id",
      Awarded: "allocated_points",
      Used: "deducted_points",
      Kind: "dim_deduction_type_id",
    };
    expect(await h.ingest(obj)).toMatchObject({ status: "COMMITTED", rowsAccepted: 4 });
    expect(await h.ingest(obj)).toMatchObject({ status: "DUPLICATE" });
    expect(await h.effective()).toEqual({ points: POINTS_EXPECTED });
  });

  it.each([
    [
      "summary.csv",
      "points_redemption_summary",
      [
        `2024-03|7001,000123,2024-03-10,50500,group_redemption,1710064800000`,
        `2024-03|7002,000124,2024-03-11,10000,redemption,1710151200000`,
        `2024-03|7003,000125,2024-03-31,1250,redeemed,1711929599000`,
      ],
    ],
    [
      "rewards.csv",
      "rewards",
      [
        "2024-03|5001,000123,2024-03-11,1,0",
        "2024-03|5002,000124,2024-03-12,0,0",
        "2024-03|5003,000125,2024-03-13,1,0",
      ],
    ],
  ])("stages %s as %s (epoch seconds and milliseconds, types without case)", async (name, dataset, want) => {
    const out = await h.ingest(await h.put(`exports/x/${name}`, await fixture(name)));
    expect(out).toMatchObject({ status: "COMMITTED", rowsRejected: 0 });
    expect(await h.effective()).toEqual({ [dataset]: want });
  });
});

describe("rows that fail validation", () => {
  it("go to rejects/<fileId>.csv with file, line, field, reason and raw row; the rest is ingested", async () => {
    const obj = await h.put("exports/points/bad.csv", await fixture("points-bad-rows.csv"));
    const out = await h.ingest(obj);
    expect(out).toMatchObject({ status: "COMMITTED", rowsRead: 10, rowsAccepted: 2, rowsRejected: 8 });
    const entry = await h.ledger.get(out.fileId);
    expect(entry?.entries[0]).toMatchObject({
      rowsRead: 10,
      rowsAccepted: 2,
      rowsRejected: 8,
      firstRejectReason: "line 3, event_id: event id is missing",
    });
    expect(entry?.rejectsKey).toBe(`rejects/${out.fileId}.csv`);
    const rejects = (await h.rejectsOf(out.fileId))?.trim().split("\n") ?? [];
    expect(rejects[0]).toBe("file,line,field,reason,raw");
    const rows = rejects.slice(1).map(splitCsvLine);
    expect(rows.map((r) => [r[0], r[1], r[2]])).toEqual([
      ["exports/points/bad.csv", "3", "event_id"],
      ["exports/points/bad.csv", "4", "dim_event_user_id"],
      ["exports/points/bad.csv", "5", "dim_event_date_id"],
      ["exports/points/bad.csv", "6", "allocated_points"],
      ["exports/points/bad.csv", "7", "allocated_points"],
      ["exports/points/bad.csv", "8", "(column 7)"],
      ["exports/points/bad.csv", "9", "(column 7)"],
      ["exports/points/bad.csv", "10", "(record)"],
    ]);
    expect(rows.map((r) => r[3])).toEqual([
      "event id is missing",
      "user id is not a numeric id",
      'not a date: "20240230"',
      "thousands separator not allowed (configure NUMBER_LOCALE)",
      "more than 3 decimal places",
      expect.stringMatching(/^INVALID_UTF8/),
      expect.stringMatching(/^BAD_QUOTE/),
      "expected 9 fields, got 4",
    ]);
    expect(rows[0]?.[4]).toBe("-1,000202,20240305,5,,,,20240305,100000");
    expect(rows[3]?.[4]).toBe('9105,000205,20240305,"1,234.5",,,,20240305,100000');
    expect((await h.effective()).points?.map((l) => l.slice(8, 12))).toEqual(["9101", "9110"]);
    // Logs carry ids and counts, never raw rows.
    expect(JSON.stringify(h.logs)).not.toContain("000202");
  });

  it("bounds field and record sizes: an oversized one is a reject, not a crash", async () => {
    h.settings.maxFieldBytes = 24;
    h.settings.maxRecordBytes = 100;
    const csv = `event_id,dim_event_user_id,dim_event_date_id,allocated_points,deducted_points\n1,2,20240301,1,\n2,2,20240301,1,"${"x".repeat(40)}"\n3,2,20240301,1,${"9".repeat(90)}\n4,2,20240301,1,\n`;
    const out = await h.ingest(await h.put("exports/points/big.csv", Buffer.from(csv)));
    expect(out).toMatchObject({ status: "COMMITTED", rowsRead: 4, rowsAccepted: 2, rowsRejected: 2 });
    const rejects = (await h.rejectsOf(out.fileId)) ?? "";
    expect(rejects).toContain("FIELD_TOO_LARGE");
    expect(rejects).toContain("RECORD_TOO_LARGE");
  });

  it("accepts thousands separators only under a configured number locale", async () => {
    const csv =
      'event_id,dim_event_user_id,dim_event_date_id,allocated_points,deducted_points\n1,2,20240301,"1,234.5",0\n';
    h.settings.numberLocale = { group: ",", decimal: "." };
    const out = await h.ingest(await h.put("exports/points/en.csv", Buffer.from(csv)));
    expect(out).toMatchObject({ rowsAccepted: 1 });
    expect((await h.effective()).points?.[0]).toContain(",1234500,0,");
  });
});

describe("delivery: the staged result equals a single clean delivery", () => {
  const clean = async () => {
    const c = await IngestHarness.create({ now });
    try {
      await c.ingest(await c.put("exports/points/points.csv", await fixture("points.csv")));
      return await c.effective();
    } finally {
      await c.remove();
    }
  };

  it("ignores a duplicate delivery of the same object version", async () => {
    const obj = await h.put("exports/points/points.csv", await fixture("points.csv"));
    await h.ingest(obj);
    const written = h.objects.written.length;
    expect(await h.ingest(obj)).toMatchObject({ status: "DUPLICATE" });
    expect(h.objects.written).toHaveLength(written);
    expect(await h.effective()).toEqual(await clean());
  });

  it("counts a file re-delivered under another key once", async () => {
    const bytes = await fixture("points.csv");
    await h.ingest(await h.put("exports/points/points.csv", bytes));
    await h.ingest(await h.put("exports/points/points (copy).csv", bytes));
    expect(await h.effective()).toEqual(await clean());
  });

  it("keeps the newest row version whatever the delivery order (incremental re-sends changed rows)", async () => {
    const base = (await fixture("points.csv")).toString("utf8");
    // An incremental file re-sends 9002 changed later (newer latest-updated time) and a stale 9001.
    const header = base.split("\n")[0];
    const incremental = `${header}\n9002,9223372036854775807,20240302,0,4,REDEEMED,,20240303,120000\n9001,000123,20240301,99,,,TransactionAdd,20240228,000000\n`;
    const newer = POINTS_EXPECTED.map((l) =>
      l.startsWith("2024-03|9002")
        ? `2024-03|9002,9223372036854775807,2024-03-02,0,4000,redeemed,,${v(2024, 3, 3, 12, 0, 0)}`
        : l,
    );
    const inc = await h.put("exports/points/incremental_2.csv", Buffer.from(incremental));
    const full = await h.put("exports/points/full_1.csv", Buffer.from(base));
    await h.ingest(inc); // out of order: the later file first
    await h.ingest(full);
    await h.ingest(inc); // and delivered twice
    expect(await h.effective()).toEqual({ points: newer });
  });

  it("skips an old version's late event (412 on If-Match) as superseded, not as a failure", async () => {
    const old = await h.put(
      "exports/points/points.csv",
      Buffer.from(
        "event_id,dim_event_user_id,dim_event_date_id,allocated_points,deducted_points\n1,2,20240301,5,\n",
      ),
    );
    const cur = await h.put("exports/points/points.csv", await fixture("points.csv"));
    expect(await h.ingest(cur)).toMatchObject({ status: "COMMITTED" });
    const late = await h.ingest(old);
    expect(late).toMatchObject({ status: "SKIPPED", reason: expect.stringContaining("superseded") });
    expect((await h.ledger.get(late.fileId))?.status).toBe("SKIPPED");
    expect(await h.effective()).toEqual(await clean());
  });

  it("leaves nothing counted after a crash midway; the retry completes the file exactly once", async () => {
    const obj = await h.put("exports/points/points.csv", await fixture("points.csv"));
    let writes = 0;
    h.objects.beforeWrite = () => {
      if (++writes === 2) throw new Error("injected crash");
    };
    await expect(h.ingest(obj)).rejects.toThrow("injected crash");
    const failed = await h.ledger.get(fileIdOf(BUCKET, obj.key, obj.eTag));
    expect(failed).toMatchObject({ status: "FAILED", reason: expect.stringContaining("injected crash") });
    expect(h.objects.keys(BUCKET, "staging/").length).toBeGreaterThan(0); // a part was written...
    expect(await h.effective()).toEqual({}); // ...but nothing is counted
    expect(h.ledger.marks).toEqual([]);
    h.objects.beforeWrite = null;
    expect(await h.ingest(obj)).toMatchObject({ status: "COMMITTED", rowsAccepted: 4 });
    expect((await h.ledger.get(failed?.fileId ?? ""))?.attempts).toBe(2);
    expect(await h.effective()).toEqual(await clean());
    expect(await h.ingest(obj)).toMatchObject({ status: "DUPLICATE" });
  });

  it("re-marks the periods of a committed file delivered again (a crash after the commit loses no mark)", async () => {
    const obj = await h.put("exports/points/points.csv", await fixture("points.csv"));
    await h.ingest(obj);
    h.ledger.periods.clear();
    await h.ingest(obj);
    expect([...h.ledger.periods.keys()].sort()).toEqual(["2024-03", "2024-04"]);
  });

  it("marks every known period dirty on a Members delivery (members_* figures use the newest snapshot)", async () => {
    await h.ingest(await h.put("exports/points/points.csv", await fixture("points.csv")));
    await h.ledger.markDirty(["2023-12"], "2024-01-01T00:00:00Z");
    h.ledger.marks.length = 0;
    const out = await h.ingest(await h.put("exports/members/members.csv", await fixture("members.csv")));
    expect(out).toMatchObject({ status: "COMMITTED", rowsAccepted: 2, periods: [] });
    expect(h.ledger.marks.map((m) => m.period)).toEqual(["2023-12", "2024-03", "2024-04"]);
    expect((await h.effective()).members).toEqual([
      // negative balance accepted; tier kept with its comma; a blank number stays blank
      `2024-04|000123,-12500,100000,2500750,"Gold, Plus",1709251200000`,
      "2024-04|000124,0,,,Silver,1709251200000",
    ]);
  });

  it("refuses keys outside exports/", async () => {
    const obj = await h.put("staging/points/x.csv", await fixture("points.csv"));
    await expect(h.ingest(obj)).rejects.toThrow(/only exports\/ is ingested/);
    expect(await h.ledger.list()).toEqual([]);
  });
});
