import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dateTimeVersion, lastDayOf, parseDate, ZonedCalendar } from "../../lib/domain/dates.ts";
import { formatThousandths, NUMBER_LOCALES, parseThousandths } from "../../lib/domain/decimal.ts";
import { periodRange } from "../../lib/domain/periods.ts";

describe("decimals are exact thousandths (invariant 4)", () => {
  it.each([
    ["0", 0],
    ["7", 7000],
    ["120.5", 120500],
    ["120.500", 120500],
    ["-3.25", -3250],
    ["+1.001", 1001],
    [".5", 500],
    ["999999999999.999", 999999999999999],
    ["1.5000", 1500],
  ])("parses %s", (text, want) => expect(parseThousandths(text)).toBe(want));

  it.each([
    ["1,234.5", "THOUSANDS_SEPARATOR"],
    ["12x", "NOT_A_NUMBER"],
    ["", "NOT_A_NUMBER"],
    ["-", "NOT_A_NUMBER"],
    ["1.2345", "TOO_MANY_DECIMALS"],
    ["1e5", "NOT_A_NUMBER"],
    ["1000000000000", "OUT_OF_RANGE"],
  ])("rejects %s with %s", (text, code) => expect(parseThousandths(text)).toBe(code));

  it("accepts grouping only with a configured locale", () => {
    expect(parseThousandths("1,234.5", { group: ",", decimal: "." })).toBe(1234500);
    expect(parseThousandths("1.234,5", { group: ".", decimal: "," })).toBe(1234500);
  });

  it("sums exactly where floating point does not", () => {
    const parts = ["0.1", "0.2", "0.3"].map((s) => BigInt(parseThousandths(s) as number));
    expect(formatThousandths(parts.reduce((a, b) => a + b, 0n))).toBe("0.6");
    expect(0.1 + 0.2 + 0.3).not.toBe(0.6);
  });

  it.each([
    [0, "0"],
    [-12500, "-12.5"],
    [1234125, "1234.125"],
    [1000, "1"],
    [5, "0.005"],
    [10n ** 20n, "100000000000000000"],
  ])("formats %s as %s", (v, s) => expect(formatThousandths(v)).toBe(s));

  it("formats numbers and bigints alike, as the bigint rule does, on both sides of 2^53", () => {
    const rule = (b: bigint): string => {
      const a = b < 0n ? -b : b;
      const frac = (a % 1000n).toString().padStart(3, "0").replace(/0+$/, "");
      return `${b < 0n ? "-" : ""}${a / 1000n}${frac === "" ? "" : `.${frac}`}`;
    };
    const edges = [
      0n,
      1n,
      -1n,
      9n,
      10n,
      99n,
      100n,
      990n,
      1001n,
      2n ** 53n - 1n,
      2n ** 53n,
      -(2n ** 53n) - 7n,
    ];
    for (const b of edges) {
      expect(formatThousandths(b)).toBe(rule(b));
      if (b <= 2n ** 53n - 1n && b >= -(2n ** 53n - 1n)) expect(formatThousandths(Number(b))).toBe(rule(b));
    }
    fc.assert(
      fc.property(fc.bigInt(-(2n ** 60n), 2n ** 60n), (b) => {
        const safe = b <= 2n ** 53n - 1n && b >= -(2n ** 53n - 1n);
        return formatThousandths(b) === rule(b) && (!safe || formatThousandths(Number(b)) === rule(b));
      }),
    );
  });
});

describe("dates", () => {
  const utc = new ZonedCalendar("UTC");
  it.each([
    ["20261031", "2026-10-31"],
    ["2026-10-31", "2026-10-31"],
    ["2026-10-31 23:59:59", "2026-10-31"],
    ["31-10-2026", "2026-10-31"],
    ["20240229", "2024-02-29"],
  ])("calendar date %s is %s, never shifted", (raw, want) => {
    expect(parseDate(raw, utc)).toBe(want);
    expect(parseDate(raw, new ZonedCalendar("Pacific/Kiritimati"))).toBe(want);
    expect(parseDate(raw, new ZonedCalendar("America/Los_Angeles"))).toBe(want);
  });

  it.each(["20261345", "20230229", "2026-13-01", "abc", "2026/10/01", "123"])("rejects %s", (raw) =>
    expect(parseDate(raw, utc)).toBe("BAD_DATE"),
  );

  it("reads epoch seconds and milliseconds in the configured zone", () => {
    // 2025-11-01T03:30:00Z
    expect(parseDate("1761967800", utc)).toBe("2025-11-01");
    expect(parseDate("1761967800000", utc)).toBe("2025-11-01");
    expect(parseDate("1761967800000", new ZonedCalendar("America/Los_Angeles"))).toBe("2025-10-31");
    expect(parseDate("1761967800", new ZonedCalendar("Asia/Kolkata"))).toBe("2025-11-01");
  });

  it("orders versions from date and time ids", () => {
    expect(dateTimeVersion("20261101", "235959")).toBeGreaterThan(dateTimeVersion("20261101", "000001"));
    expect(dateTimeVersion("20261102", "000000")).toBeGreaterThan(dateTimeVersion("20261101", "235959"));
    expect(dateTimeVersion("", "1")).toBe(0);
  });

  it("knows month ends and ranges", () => {
    expect(lastDayOf("2024-02")).toBe("2024-02-29");
    expect(lastDayOf("2026-02")).toBe("2026-02-28");
    expect(lastDayOf("2026-12")).toBe("2026-12-31");
    expect(periodRange("2025-11", "2026-02")).toEqual(["2025-11", "2025-12", "2026-01", "2026-02"]);
    expect(() => periodRange("2026-02", "2025-11")).toThrow(/empty/);
  });
});

describe("number locales (NUMBER_LOCALE)", () => {
  it.each([
    ["1,234.5", undefined, "THOUSANDS_SEPARATOR"],
    ["1.234,5", undefined, "THOUSANDS_SEPARATOR"],
    ["1,234.5", NUMBER_LOCALES.en, 1234500],
    ["-1,234,567.125", NUMBER_LOCALES.en, -1234567125],
    ["1234.5", NUMBER_LOCALES.en, 1234500],
    ["1,23.5", NUMBER_LOCALES.en, "NOT_A_NUMBER"],
    ["1,5", NUMBER_LOCALES.en, "NOT_A_NUMBER"],
    ["1.234,5", NUMBER_LOCALES.de, 1234500],
    ["1.234", NUMBER_LOCALES.de, 1234000],
    ["0,125", NUMBER_LOCALES.de, 125],
    ["1.5", NUMBER_LOCALES.de, "NOT_A_NUMBER"],
    ["1,2,3", NUMBER_LOCALES.de, "NOT_A_NUMBER"],
  ] as const)("%s under %j is %s", (text, locale, want) => {
    expect(parseThousandths(text, locale)).toBe(want);
  });
});
