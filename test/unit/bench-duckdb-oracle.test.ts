/**
 * `npm run bench` checks our group summary against DuckDB computing it from the same raw CSVs
 * (bench/duckdb-summary.ts). This keeps that oracle from rotting: on a tiny generated size, the bench's
 * DuckDB SQL and our in-process path (ingestObject, then aggregatePeriods) must give the same figures,
 * every figure must be exercised (non-zero somewhere), and a changed figure must be reported. No
 * wall-clock assertions.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  duckdbGroupSummary,
  firstDifference,
  ORACLE_FIGURES,
  toThousandths,
} from "../../bench/duckdb-summary.ts";
import { type BenchData, writeBenchData } from "../../bench/ingest-data.ts";
import { runInProcess } from "../../bench/ingest-worker.ts";

describe("the bench's DuckDB oracle equals our in-process path", () => {
  let dir: string;
  let data: BenchData;
  let duck: Record<string, string>[];
  let ours: Record<string, string>[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-oracle-"));
    data = await writeBenchData(dir, 4_000);
    const out = join(dir, "ours.json");
    const run = await runInProcess(dir, out);
    expect([run.rows, run.accepted]).toEqual([4_000, 4_000]);
    ours = JSON.parse(await readFile(out, "utf8")) as Record<string, string>[];
    duck = await duckdbGroupSummary(data.files);
  }, 60_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("gives the same rows and figures", () => {
    // Two periods, every group of the membership in each.
    const groups = new Set(duck.map((r) => r.group_id));
    expect(new Set(duck.map((r) => r.period))).toEqual(new Set(["2024-01", "2024-02"]));
    expect(duck).toHaveLength(2 * groups.size);
    expect(firstDifference(duck, ours)).toBeNull();
  });

  it("exercises every figure it compares", () => {
    for (const [col] of ORACLE_FIGURES) {
      expect(
        duck.some((r) => r[col] !== "0"),
        col,
      ).toBe(true);
    }
  });

  it("reports the first difference, decimals compared as exact thousandths", () => {
    const row = ours.find((r) => r.points_awarded !== "0") ?? {};
    const awarded = toThousandths(row.points_awarded ?? "") ?? 0n;
    const changed = ours.map((r) =>
      r === row ? { ...r, points_awarded: String(Number(awarded + 1n) / 1000) } : r,
    );
    expect(firstDifference(duck, changed)).toMatch(/points_awarded: DuckDB \d+ thousandths, ours/);
    expect(firstDifference(duck, ours.slice(1))).toMatch(/DuckDB has the row, ours has not/);
    expect([
      toThousandths("12.5"),
      toThousandths("-3"),
      toThousandths("0.125"),
      toThousandths("1e3"),
    ]).toEqual([12_500n, -3_000n, 125n, null]);
  });
});
