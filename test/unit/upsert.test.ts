import { describe, expect, it } from "vitest";
import { StagedRows } from "../../lib/domain/upsert.ts";

type Row = [user: string, date: string, a: number | bigint, b: number | bigint, kind: number];

function rowsOf(t: StagedRows): Row[] {
  const out: Row[] = [];
  t.forEach((user, d, a, b, kind) => {
    out.push([user, t.dates[d] as string, a, b, kind]);
  });
  return out;
}

describe("StagedRows: the numeric upsert of summed rows (invariant 2)", () => {
  it("keeps the highest version, then the latest delivery, then the larger file id", () => {
    const t = new StagedRows();
    t.add("e1", 5, 100, "a", "1", "2026-10-01", 1, 0, 0);
    t.add("e1", 7, 50, "b", "1", "2026-10-02", 2, 0, 0);
    t.add("e1", 6, 999, "c", "1", "2026-10-03", 3, 0, 0);
    t.add("e2", 1, 100, "a", "2", "2026-10-01", 4, 0, 1);
    t.add("e2", 1, 200, "b", "2", "2026-10-01", 5, 0, 2);
    t.add("e3", 1, 100, "b", "3", "2026-10-01", 6, 0, 8);
    t.add("e3", 1, 100, "a", "3", "2026-10-01", 7, 0, 9);
    expect(t.size).toBe(3);
    expect(rowsOf(t)).toEqual([
      ["1", "2026-10-02", 2, 0, 0],
      ["2", "2026-10-01", 5, 0, 2],
      ["3", "2026-10-01", 6, 0, 8],
    ]);
  });

  it("reports every further version's event date next to the kept one (cross-period links)", () => {
    const seen: string[] = [];
    const t = new StagedRows((kept, other) => seen.push(`${kept}<${other}`));
    t.add("e1", 1, 1, "a", "1", "2026-10-31", 0, 0, 0);
    t.add("e1", 2, 1, "b", "1", "2026-11-01", 0, 0, 0);
    t.add("e1", 1, 1, "c", "1", "2026-09-30", 0, 0, 0);
    expect(seen).toEqual(["2026-10-31<2026-11-01", "2026-11-01<2026-09-30"]);
    expect(rowsOf(t).map((r) => r[1])).toEqual(["2026-11-01"]);
  });

  it("keeps amounts beyond 2^52 exactly, also when a newer version replaces them with small ones", () => {
    const huge = 123456789012345678901n;
    const t = new StagedRows();
    t.add("e1", 1, 1, "a", "1", "2026-10-01", huge, -huge, 0);
    t.add("e2", 1, 1, "a", "1", "2026-10-01", 2 ** 52, -(2 ** 52), 0);
    t.add("e3", 1, 1, "a", "1", "2026-10-01", huge, 1, 0);
    t.add("e3", 2, 1, "a", "1", "2026-10-01", 5, huge, 0);
    expect(rowsOf(t)).toEqual([
      ["1", "2026-10-01", huge, -huge, 0],
      ["1", "2026-10-01", 2 ** 52, -(2 ** 52), 0],
      ["1", "2026-10-01", 5, huge, 0],
    ]);
  });

  it("hands out one user's rows together, whatever the order they came in, past its initial capacity", () => {
    const t = new StagedRows(undefined, 16);
    const n = 5000;
    for (let i = 0; i < n; i++) t.add(`e${i}`, 1, 1, "a", `u${i % 7}`, "2026-10-01", i, 0, 0);
    const rows = rowsOf(t);
    expect(rows).toHaveLength(n);
    const users = rows.map((r) => r[0]);
    expect(users.filter((u, i) => i > 0 && u !== users[i - 1])).toHaveLength(6);
    expect(rows.reduce((s, r) => s + Number(r[2]), 0)).toBe((n * (n - 1)) / 2);
    expect(t.users).toHaveLength(7);
    // every key is found again after the table grew: newer versions replace, nothing is added
    for (let i = 0; i < n; i++) t.add(`e${i}`, 2, 1, "a", `u${i % 7}`, "2026-10-02", 1, 0, 0);
    expect(t.size).toBe(n);
    expect(rowsOf(t).every((r) => r[1] === "2026-10-02" && r[2] === 1)).toBe(true);
  });
});
