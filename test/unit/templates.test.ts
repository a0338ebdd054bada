import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { dateTimeVersion, ZonedCalendar } from "../../lib/domain/dates.ts";
import { createNormalizer, isReject, type StagedRow } from "../../lib/domain/normalize.ts";
import { detectTemplate } from "../../lib/domain/templates.ts";

const header = (name: string) =>
  readFileSync(new URL(`../fixtures/headers/${name}`, import.meta.url), "utf8")
    .trim()
    .split(",");

const must = <T>(v: T | null): T => {
  if (v === null) throw new Error("no template detected");
  return v;
};

describe("template detection from the header signature", () => {
  it.each([
    ["points-raw.csv", "points"],
    ["points-display.csv", "points"],
    ["points-dimension.csv", "points"],
    ["summary-raw.csv", "points_redemption_summary"],
    ["summary-display.csv", "points_redemption_summary"],
    ["members-raw.csv", "members"],
    ["rewards.csv", "rewards"],
  ])("%s is %s", (file, template) => {
    expect(detectTemplate(header(file))?.template.name).toBe(template);
  });

  it("rejects an unknown header", () => {
    expect(detectTemplate(header("unknown.csv"))).toBeNull();
    expect(detectTemplate(header("points-renamed.csv"))).toBeNull();
  });

  it("uses a configured column map for renamed columns", () => {
    const d = detectTemplate(header("points-renamed.csv"), {
      Member: "dim_event_user_id",
      Day: "dim_event_date_id",
      Awarded: "allocated_points",
      Used: "deducted_points",
      Txn: "event_id",
    });
    expect(d?.template.name).toBe("points");
    expect(d?.columns.get("dim_event_user_id")).toBe(0);
  });

  it("maps the tier column of the User dimension", () => {
    const d = detectTemplate(header("members-raw.csv"));
    expect(d?.columns.get("slab_name")).toBe(6);
  });
});

describe("normalization", () => {
  const cal = new ZonedCalendar("UTC");
  const h = header("points-raw.csv");
  const norm = createNormalizer(must(detectTemplate(h)), h, { calendar: cal });

  it("keeps ids as strings (leading zeros, 19 digits) and decimals exact", () => {
    const r = norm([
      "0001234",
      "9223372036854775807",
      "20261005",
      "12.5",
      "",
      "",
      "GroupTransactionAdd",
    ]) as StagedRow;
    expect(isReject(r)).toBe(false);
    expect(r.key).toBe("0001234");
    expect(r.values.slice(0, 7)).toEqual([
      "0001234",
      "9223372036854775807",
      "2026-10-05",
      "12500",
      "",
      "",
      "grouptransactionadd",
    ]);
    expect(r.period).toBe("2026-10");
  });

  it("never turns a blank number into 0", () => {
    const r = norm(["1", "2", "20261005", "NULL", "Not Captured", "REDEEMED", ""]) as StagedRow;
    expect(r.values[3]).toBe("");
    expect(r.values[4]).toBe("");
    expect(r.values[5]).toBe("redeemed");
  });

  it.each([
    [["", "2", "20261005", "1", "0", "", ""], "event_id", /missing/],
    [["-1", "2", "20261005", "1", "0", "", ""], "event_id", /missing/],
    [["1", "abc", "20261005", "1", "0", "", ""], "dim_event_user_id", /not a numeric id/],
    [["1", "2", "20261345", "1", "0", "", ""], "dim_event_date_id", /not a date/],
    [["1", "2", "20261005", "12x", "0", "", ""], "allocated_points", /not a number/],
    [["1", "2", "20261005", "1,200", "0", "", ""], "allocated_points", /thousands separator/],
    [["1", "2", "20261005"], "(record)", /expected 7 fields, got 3/],
  ])("rejects %j naming the field", (row, field, reason) => {
    const r = norm(row);
    expect(isReject(r)).toBe(true);
    if (isReject(r)) {
      expect(r.field).toBe(field);
      expect(r.reason).toMatch(reason);
    }
  });

  it("dates a redemption by its event date, else by its epoch time in the report zone", () => {
    const sh = header("summary-raw.csv");
    const n = createNormalizer(must(detectTemplate(sh)), sh, { calendar: new ZonedCalendar("Asia/Kolkata") });
    const a = n([
      "10",
      "5.25",
      "-1",
      "GROUP_REDEMPTION",
      "7",
      "20261031",
      "1761967800000",
      "1761967800",
    ]) as StagedRow;
    expect(a.values).toEqual(["10", "7", "2026-10-31", "5250", "group_redemption", "1761967800000"]);
    const b = n(["11", "1", "-1", "Redemption", "7", "", "1761935400000", ""]) as StagedRow;
    // 2025-10-31T18:30Z is 2025-11-01 00:00 in Kolkata
    expect(b.values[2]).toBe("2025-11-01");
  });
});

describe("row version from the latest-updated date and time ids", () => {
  const h = [
    "event_id",
    "dim_event_user_id",
    "dim_event_date_id",
    "allocated_points",
    "deducted_points",
    "dim_latest_updated_date_id",
    "dim_latest_updated_time_id",
  ];
  const norm = createNormalizer(must(detectTemplate(h)), h, { calendar: new ZonedCalendar("UTC") });
  it.each([
    ["20240301", "101500"],
    ["20240301", "1015"],
    ["20240301", "5"],
    ["20240301", ""],
    ["20240301", "99"],
    ["20240301", "12:30"],
    ["20240229", "235959"],
    ["", "101500"],
    ["2024030", "101500"],
  ])("%s %s gives dateTimeVersion's value (also from the per-day cache)", (d, t) => {
    for (let i = 0; i < 2; i++) {
      const r = norm(["1", "2", "20240301", "1", "", d, t]) as StagedRow;
      expect(r.values[7]).toBe(String(dateTimeVersion(d, t)));
    }
  });
});
