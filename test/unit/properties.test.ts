/**
 * Issue 8, bad input: property tests of ingestion through its ports. Random dialect perturbations
 * (quoting, CRLF/LF, BOM, column order, header spelling), random chunking, random splitting into files,
 * delivery order and duplication give the same effective rows (what every report is computed from); random
 * bytes give a file rejected (or skipped) with a reason, never a crash; hostile input is bounded; report
 * cells are safe against formula injection.
 */
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { zipSync } from "fflate";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { renderCsv, safeCell } from "../../lib/domain/report.ts";
import { IngestError } from "../../lib/ingest.ts";
import { BUCKET, IngestHarness } from "../support/ingest-harness.ts";

const RUNS = 25;

// ------------------------------------------------------------------------------------------ generators

interface PointsRow {
  event_id: string;
  dim_event_user_id: string;
  dim_event_date_id: string;
  allocated_points: string;
  deducted_points: string;
  dim_deduction_type_id: string;
  event_name: string;
  dim_latest_updated_date_id: string;
}
type Col = keyof PointsRow;
const COLS: Col[] = [
  "event_id",
  "dim_event_user_id",
  "dim_event_date_id",
  "allocated_points",
  "deducted_points",
  "dim_deduction_type_id",
  "event_name",
  "dim_latest_updated_date_id",
];
/** Header spellings that all mean the same column: raw, display, Dimension.attribute, case and spacing. */
const SPELLINGS: Record<Col, string[]> = {
  event_id: ["event_id", "Event Id", "points.EVENT_ID", "EventID"],
  dim_event_user_id: ["dim_event_user_id", "User Id", "Points.DIM_EVENT_USER_ID", "user id"],
  dim_event_date_id: ["dim_event_date_id", "Event Date", "points.dim event date id", "EVENT_DATE_ID"],
  allocated_points: ["allocated_points", "Allocated Points", "Points.Allocated_Points", "ALLOCATED POINTS"],
  deducted_points: ["deducted_points", "Deducted Points", "points.deducted points", "DeductedPoints"],
  dim_deduction_type_id: ["dim_deduction_type_id", "Deduction Type", "points.DIM DEDUCTION TYPE ID"],
  event_name: ["event_name", "Event Name", "PointsPromotion.event_name"],
  dim_latest_updated_date_id: [
    "dim_latest_updated_date_id",
    "Latest Updated Date",
    "points.latest_updated_date",
  ],
};

const decimal = fc
  .tuple(fc.integer({ min: 0, max: 99_999 }), fc.integer({ min: 0, max: 999 }))
  .map(([i, f]) => `${i}.${String(f).padStart(3, "0")}`);
const day = fc.integer({ min: 1, max: 28 }).map((d) => String(d).padStart(2, "0"));

const pointsRow = (id: number) =>
  fc
    .record({
      user: fc.oneof(fc.integer({ min: 1, max: 9_999_999 }).map(String), fc.constant("000123")),
      month: fc.constantFrom("03", "04"),
      day,
      kind: fc.constantFrom("award", "redeemed", "expired", "return"),
      amount: decimal,
      event: fc.constantFrom("TransactionAdd", "GroupTransactionAdd", "", 'Say "hi", then go\nhome'),
    })
    .map(
      (r): PointsRow => ({
        event_id: String(9_000_000_000_000 + id),
        dim_event_user_id: r.user,
        dim_event_date_id: `2024${r.month}${r.day}`,
        allocated_points: r.kind === "award" ? r.amount : "0",
        deducted_points: r.kind === "award" ? "" : r.amount,
        dim_deduction_type_id: r.kind === "award" ? "" : r.kind.toUpperCase(),
        event_name: r.event,
        dim_latest_updated_date_id: `2024${r.month}${r.day}`,
      }),
    );

const rows = fc
  .integer({ min: 1, max: 30 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => pointsRow(i))));

interface Dialect {
  order: number[];
  spelling: number[];
  quoteAll: boolean;
  quoteSome: boolean[];
  crlf: boolean;
  bom: boolean;
  trailingNewline: boolean;
  gzip: boolean;
  chunkSize: number;
}

const dialect: fc.Arbitrary<Dialect> = fc.record({
  order: fc.shuffledSubarray([0, 1, 2, 3, 4, 5, 6, 7], { minLength: 8, maxLength: 8 }),
  spelling: fc.array(fc.nat(3), { minLength: 8, maxLength: 8 }),
  quoteAll: fc.boolean(),
  quoteSome: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
  crlf: fc.boolean(),
  bom: fc.boolean(),
  trailingNewline: fc.boolean(),
  gzip: fc.boolean(),
  chunkSize: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 97 }), fc.constant(64 * 1024)),
});

const CANONICAL: Dialect = {
  order: [0, 1, 2, 3, 4, 5, 6, 7],
  spelling: [0, 0, 0, 0, 0, 0, 0, 0],
  quoteAll: false,
  quoteSome: Array(8).fill(false),
  crlf: false,
  bom: false,
  trailingNewline: true,
  gzip: false,
  chunkSize: 64 * 1024,
};

/** RFC 4180 text of the rows in a dialect: quoting is optional unless a field needs it. */
function render(data: readonly PointsRow[], d: Dialect): Uint8Array {
  const eol = d.crlf ? "\r\n" : "\n";
  const cols = d.order.map((i) => COLS[i] as Col);
  const cell = (v: string, j: number) => {
    const needs = /[",\r\n]/.test(v);
    return needs || d.quoteAll || d.quoteSome[j] ? `"${v.replaceAll('"', '""')}"` : v;
  };
  const header = cols.map((c, j) => cell(SPELLINGS[c][(d.spelling[j] ?? 0) % SPELLINGS[c].length] ?? c, j));
  const lines = [header.join(","), ...data.map((r) => cols.map((c, j) => cell(r[c], j)).join(","))];
  const text = (d.bom ? "\uFEFF" : "") + lines.join(eol) + (d.trailingNewline ? eol : "");
  const bytes = Buffer.from(text, "utf8");
  return d.gzip ? gzipSync(bytes) : bytes;
}

// ------------------------------------------------------------------------------------------------ tests

let h: IngestHarness;
const fresh = async () => {
  await h?.remove();
  h = await IngestHarness.create();
  return h;
};
beforeEach(fresh);
afterEach(async () => {
  await h.remove();
});

async function canonicalEffective(data: readonly PointsRow[]) {
  const c = await IngestHarness.create();
  try {
    const out = await c.ingest(await c.put("exports/points/canonical.csv", render(data, CANONICAL)));
    expect(out.status).toBe("COMMITTED");
    return await c.effective();
  } finally {
    await c.remove();
  }
}

describe("dialect, chunking, splitting, order and duplication do not change what is counted", {
  timeout: 90_000,
}, () => {
  it("any dialect and chunking gives the canonical file's rows", async () => {
    await fc.assert(
      fc.asyncProperty(rows, dialect, async (data, d) => {
        const want = await canonicalEffective(data);
        await fresh();
        h.objects.chunkSize = d.chunkSize;
        const out = await h.ingest(
          await h.put(`exports/points/file${d.gzip ? ".csv.gz" : ".csv"}`, render(data, d)),
        );
        expect(out).toMatchObject({ status: "COMMITTED", rowsRead: data.length, rowsAccepted: data.length });
        expect(await h.effective()).toEqual(want);
      }),
      { numRuns: RUNS },
    );
  });

  it("any split into files, delivered in any order with duplicates and re-deliveries, gives the whole file's rows", async () => {
    const plan = rows.chain((data) =>
      fc.record({
        data: fc.constant(data),
        // each row goes into 1..3 files (overlapping deliveries), 1..4 files in all
        files: fc.integer({ min: 1, max: 4 }),
        placement: fc.array(fc.array(fc.nat(3), { minLength: 1, maxLength: 3 }), {
          minLength: data.length,
          maxLength: data.length,
        }),
        dialects: fc.array(dialect, { minLength: 4, maxLength: 4 }),
        order: fc.array(fc.nat(7), { minLength: 1, maxLength: 12 }),
        zip: fc.boolean(),
      }),
    );
    await fc.assert(
      fc.asyncProperty(plan, async (p) => {
        const want = await canonicalEffective(p.data);
        await fresh();
        const parts: PointsRow[][] = Array.from({ length: p.files }, () => []);
        p.data.forEach((r, i) => {
          for (const f of new Set((p.placement[i] ?? [0]).map((x) => x % p.files))) parts[f]?.push(r);
        });
        const files = parts
          .map((part, i) => ({ part, d: p.dialects[i] ?? CANONICAL, i }))
          .filter((f) => f.part.length > 0);
        const bytesOf = (f: (typeof files)[number]) => {
          const body = render(f.part, { ...f.d, gzip: false });
          return p.zip && f.i % 2 === 1 ? zipSync({ [`part-${f.i}.csv`]: body }) : render(f.part, f.d);
        };
        const objects = [];
        for (const f of files)
          objects.push(
            await h.put(
              `exports/points/part-${f.i}${p.zip && f.i % 2 === 1 ? ".zip" : f.d.gzip ? ".gz" : ".csv"}`,
              bytesOf(f),
            ),
          );
        // Every file delivered at least once, in the generated order, then some again (duplicate events).
        const order = [...p.order.map((x) => x % objects.length), ...objects.map((_, i) => i)];
        for (const i of order) {
          const obj = objects[i];
          if (obj) await h.ingest(obj);
        }
        // A re-delivery under the same key (new version, same content) and under a new key.
        const again = files[0];
        if (again) {
          await h.ingest(await h.put(`exports/points/part-${again.i}.csv`, render(again.part, CANONICAL)));
          await h.ingest(await h.put("exports/points/resent-copy.csv", render(again.part, again.d)));
        }
        expect(await h.effective()).toEqual(want);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("random and hostile input: a rejected file with a reason, bounded, and the process lives", {
  timeout: 60_000,
}, () => {
  const prefixes = [
    new Uint8Array(0),
    new Uint8Array([0x1f, 0x8b, 0x08, 0x00]), // gzip
    new Uint8Array([0x50, 0x4b, 0x03, 0x04]), // zip local header
    Buffer.from("event_id,dim_event_user_id,allocated_points,deducted_points\n"),
    Buffer.from("\uFEFF"),
  ];

  it("random bytes (also behind gzip, zip and header prefixes) never crash ingestion", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...prefixes.keys()),
        fc.uint8Array({ minLength: 0, maxLength: 4096 }),
        fc.constantFrom("exports/x/file", "exports/x/file.csv", "exports/x/file.gz", "exports/x/file.zip"),
        async (pi, bytes, key) => {
          const prefix = prefixes[pi] ?? new Uint8Array(0);
          const body = Buffer.concat([prefix, bytes]);
          n += 1;
          const out = await h.ingest(await h.put(key.replace("file", `file-${n}`), body));
          if (out.status === "DUPLICATE") throw new Error("a fresh key cannot be a duplicate");
          if (out.status === "COMMITTED") {
            // Only a real Points header can commit, and then every row is accounted for.
            expect(pi).toBe(3);
            expect(out.rowsRead).toBe(out.rowsAccepted + out.rowsRejected);
          } else {
            expect(out.reason).toBeTruthy();
            if (pi !== 3) expect(["REJECTED", "SKIPPED"]).toContain(out.status);
          }
          const entry = await h.ledger.get(out.fileId);
          expect(entry?.status).toBe(out.status);
          expect(h.objects.bodies.every((b) => b.destroyed || b.readableEnded)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("a gzip bomb is rejected as ZIP_BOMB without expanding it", async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 }); // ~64 KB -> 64 MB of zeros
    const out = await h.ingest(await h.put("exports/points/bomb.csv.gz", bomb));
    expect(out).toMatchObject({ status: "REJECTED" });
    expect(out.reason).toMatch(/ZIP_BOMB/);
  });

  it("a zip bomb (one entry declaring or expanding past the ratio) is rejected", async () => {
    const header = Buffer.from("event_id,dim_event_user_id,allocated_points,deducted_points\n");
    const zip = zipSync(
      { "a.csv": Buffer.concat([header, Buffer.alloc(32 * 1024 * 1024, 0x31)]) },
      { level: 9 },
    );
    const out = await h.ingest(await h.put("exports/points/bomb.zip", zip));
    expect(out.status).toBe("REJECTED");
    expect(out.reason).toMatch(/ZIP_BOMB/);
  });

  it("deeply nested zips are rejected as ZIP_NESTED", async () => {
    let inner: Uint8Array = Buffer.from(
      "event_id,dim_event_user_id,allocated_points,deducted_points\n1,2,3,0\n",
    );
    for (let i = 0; i < 20; i++) inner = zipSync({ [`level-${i}.zip`]: inner });
    const out = await h.ingest(await h.put("exports/points/nested.zip", inner));
    expect(out.status).toBe("REJECTED");
    expect(out.reason).toMatch(/ZIP_NESTED/);
  });

  it("a zip entry whose name escapes the archive is rejected", async () => {
    const zip = zipSync({ "../../staging/points/evil.csv": Buffer.from("event_id\n1\n") });
    const out = await h.ingest(await h.put("exports/points/escape.zip", zip));
    expect(out.status).toBe("REJECTED");
    expect(out.reason).toMatch(/ZIP_UNSAFE_PATH/);
  });

  it("giant lines and fields are rejected row by row, the rest of the file is ingested", async () => {
    h.settings.maxFieldBytes = 1024;
    h.settings.maxRecordBytes = 4096;
    const head = "event_id,dim_event_user_id,dim_event_date_id,allocated_points,deducted_points\n";
    const giantLine = `2,${"9".repeat(3 * 1024 * 1024)}\n`; // 3 MB line, no quotes
    const giantField = `3,"${"x".repeat(2 * 1024 * 1024)}",20240301,1,0\n`; // 2 MB quoted field
    const body = Buffer.from(`${head}1,10,20240301,1.5,0\n${giantLine}${giantField}4,11,20240302,2,0\n`);
    const out = await h.ingest(await h.put("exports/points/giant.csv", body));
    expect(out).toMatchObject({ status: "COMMITTED", rowsRead: 4, rowsAccepted: 2, rowsRejected: 2 });
    const rejects = await h.objects.readBytes(BUCKET, `rejects/${out.fileId}.csv`);
    // The rejects file keeps a bounded excerpt, not the 3 MB line.
    expect(rejects?.byteLength ?? 0).toBeLessThan(64 * 1024);
  });

  it("keys that try to escape the exports prefix are refused or stay inside: staged keys never derive from them", async () => {
    await expect(h.ingest(await h.put("staging/points/x.csv", Buffer.from("a\n1\n")))).rejects.toBeInstanceOf(
      IngestError,
    );
    await expect(h.ingest(await h.put("../exports/x.csv", Buffer.from("a\n1\n")))).rejects.toBeInstanceOf(
      IngestError,
    );
    const body = Buffer.from(
      "event_id,dim_event_user_id,dim_event_date_id,allocated_points,deducted_points\n1,10,20240301,1,0\n",
    );
    const sneaky = [
      "exports/../reports/latest/manifest.json",
      "exports/../../staging/points/period=2024-03/part=00/evil.csv.gz",
      "exports/%2e%2e/reports/x.csv",
    ];
    for (const key of sneaky) {
      const out = await h.ingest(await h.put(key, body));
      expect(out.status).toBe("COMMITTED");
    }
    for (const k of h.objects.written)
      expect(k).toMatch(
        /^(staging\/points\/period=\d{4}-\d{2}\/part=\d+\/[0-9a-f]{32}\.csv\.gz|rejects\/[0-9a-f]{32}\.csv)$/,
      );
  });
});

describe("report cells are safe against spreadsheet formula injection", () => {
  const formulaStart = /^[=+\-@\t\r]/;
  const NUMBER = /^-?\d+(\.\d+)?$/; // what the reports write as numbers

  it("no rendered text cell starts a formula, numbers stay numbers, the text is kept", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.string(),
            fc.constantFrom("=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=x", "\r=x", "-12.5", "+7"),
            fc.string().map((s) => `=${s}`),
          ),
          { minLength: 1, maxLength: 6 },
        ),
        (cells) => {
          for (const c of cells) {
            const safe = safeCell(c);
            if (NUMBER.test(c)) expect(safe).toBe(c);
            else {
              expect(safe).not.toMatch(formulaStart);
              expect(safe.endsWith(c)).toBe(true);
            }
          }
          const columns = cells.map((_, i) => `c${i}`);
          const csv = renderCsv(columns, [Object.fromEntries(cells.map((c, i) => [`c${i}`, c]))]);
          const line = csv.split("\r\n")[1] ?? "";
          for (const field of line.match(/("(?:[^"]|"")*"|[^,]*)/g) ?? []) {
            const v = field.startsWith('"') ? field.slice(1, -1).replaceAll('""', '"') : field;
            if (!NUMBER.test(v)) expect(v).not.toMatch(formulaStart);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
