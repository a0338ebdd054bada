import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildAttributionIndex,
  calendarDateIn,
  compareGroupIds,
  groupOfMemberOn,
} from "../../lib/domain/attribution.ts";
import type { Membership } from "../../lib/domain/membership.ts";
import { membership } from "../support/membership.ts";

const ms = (groupId: string, extra: Partial<Membership> = {}) => membership(groupId, "u1", extra);

interface Case {
  name: string;
  memberships: Membership[];
  timeZone: string;
  expect: [date: string, group: string | null][];
}

const cases: Case[] = [
  {
    name: "joined mid-period: counts from joinedOn on",
    memberships: [ms("9", { joinedOn: "2024-03-15" })],
    timeZone: "UTC",
    expect: [
      ["2024-03-14", null],
      ["2024-03-15", "9"],
      ["2024-03-31", "9"],
      ["2030-01-01", "9"],
    ],
  },
  {
    name: "joinedOn unknown: counts on every date while active",
    memberships: [ms("9", { joinedOn: null })],
    timeZone: "UTC",
    expect: [
      ["2001-01-01", "9"],
      ["2024-03-15", "9"],
    ],
  },
  {
    name: "exit observed later: counts before the exit date, not on or after it",
    memberships: [ms("9", { active: false, exitSeenAt: "2024-03-20T10:00:00.000Z" })],
    timeZone: "UTC",
    expect: [
      ["2023-12-31", null],
      ["2024-01-01", "9"],
      ["2024-03-19", "9"],
      ["2024-03-20", null],
      ["2024-04-01", null],
    ],
  },
  {
    name: "exit date is the calendar date in the report time zone (Asia/Kolkata: next day)",
    memberships: [ms("9", { active: false, exitSeenAt: "2024-03-31T20:00:00.000Z" })],
    timeZone: "Asia/Kolkata",
    expect: [
      ["2024-03-31", "9"],
      ["2024-04-01", null],
    ],
  },
  {
    name: "exit date is the calendar date in the report time zone (UTC: same day)",
    memberships: [ms("9", { active: false, exitSeenAt: "2024-03-31T20:00:00.000Z" })],
    timeZone: "UTC",
    expect: [
      ["2024-03-30", "9"],
      ["2024-03-31", null],
    ],
  },
  {
    name: "exit date is the calendar date in the report time zone (America/Los_Angeles: day before)",
    memberships: [ms("9", { active: false, exitSeenAt: "2024-04-01T03:00:00.000Z" })],
    timeZone: "America/Los_Angeles",
    expect: [
      ["2024-03-30", "9"],
      ["2024-03-31", null],
    ],
  },
  {
    name: "first seen exited never counts, whatever its dates",
    memberships: [
      ms("9", { active: false, firstSeenExited: true, joinedOn: "2020-01-01" }),
      ms("8", { active: false, firstSeenExited: true, exitSeenAt: "2030-01-01T00:00:00.000Z" }),
    ],
    timeZone: "UTC",
    expect: [
      ["2020-06-01", null],
      ["2024-06-01", null],
    ],
  },
  {
    name: "several groups without a default: numerically smallest id (9 before 10)",
    memberships: [ms("10"), ms("9"), ms("100")],
    timeZone: "UTC",
    expect: [["2024-02-01", "9"]],
  },
  {
    name: "several groups: the default group wins over a smaller id",
    memberships: [ms("9"), ms("10", { defaultGroup: true })],
    timeZone: "UTC",
    expect: [["2024-02-01", "10"]],
  },
  {
    name: "the default group wins only where it qualifies",
    memberships: [ms("9"), ms("10", { defaultGroup: true, joinedOn: "2024-03-01" })],
    timeZone: "UTC",
    expect: [
      ["2024-02-01", "9"],
      ["2024-03-01", "10"],
    ],
  },
  {
    name: "bigint-sized ids compare numerically",
    memberships: [ms("18446744073709551617"), ms("18446744073709551616"), ms("99999999999999999999")],
    timeZone: "UTC",
    expect: [["2024-02-01", "18446744073709551616"]],
  },
  {
    name: "no group at all",
    memberships: [],
    timeZone: "UTC",
    expect: [["2024-02-01", null]],
  },
  {
    name: "rejoin: the previous stint counts up to its exit, the gap does not, the new stint from its joinedOn",
    memberships: [
      ms("9", {
        joinedOn: "2024-04-01",
        previousStints: [{ joinedOn: "2024-01-01", exitSeenAt: "2024-02-10T12:00:00.000Z" }],
      }),
    ],
    timeZone: "UTC",
    expect: [
      ["2023-12-31", null],
      ["2024-01-01", "9"],
      ["2024-02-09", "9"],
      ["2024-02-10", null],
      ["2024-03-31", null],
      ["2024-04-01", "9"],
    ],
  },
  {
    name: "rejoin with a stale joinedOn: the new stint starts no earlier than the previous exit",
    memberships: [
      ms("9", {
        joinedOn: "2024-01-01",
        previousStints: [{ joinedOn: "2024-02-01", exitSeenAt: "2024-03-10T12:00:00.000Z" }],
      }),
    ],
    timeZone: "UTC",
    expect: [
      ["2024-01-15", null],
      ["2024-02-01", "9"],
      ["2024-03-10", "9"],
    ],
  },
  {
    name: "a previous stint in one group, another group meanwhile",
    memberships: [
      ms("5", {
        active: false,
        joinedOn: "2024-01-01",
        exitSeenAt: "2024-05-01T00:00:00.000Z",
        previousStints: [{ joinedOn: null, exitSeenAt: "2023-06-01T00:00:00.000Z" }],
      }),
      ms("7", { joinedOn: "2023-09-01" }),
    ],
    timeZone: "UTC",
    expect: [
      ["2023-05-31", "5"],
      ["2023-06-01", null],
      ["2023-09-01", "7"],
      ["2024-02-01", "5"],
      ["2024-05-01", "7"],
    ],
  },
];

function check(c: Case): void {
  const index = buildAttributionIndex(c.memberships, c.timeZone);
  for (const [date, group] of c.expect) {
    expect({ date, group: groupOfMemberOn(c.memberships, date, c.timeZone) }).toEqual({ date, group });
    expect({ date, group: index.groupOf("u1", date) }).toEqual({ date, group });
  }
}

const originalTz = process.env.TZ;

for (const processTz of ["UTC", "America/Los_Angeles", "Asia/Kolkata"]) {
  describe(`attribution with process TZ=${processTz}`, () => {
    beforeAll(() => {
      process.env.TZ = processTz;
    });
    afterAll(() => {
      if (originalTz === undefined) delete process.env.TZ;
      else process.env.TZ = originalTz;
    });

    it("the process time zone really is in effect", () => {
      const offset = new Date("2024-01-15T12:00:00Z").getTimezoneOffset();
      expect(offset).toBe({ UTC: 0, "America/Los_Angeles": 480, "Asia/Kolkata": -330 }[processTz]);
    });

    for (const c of cases) it(c.name, () => check(c));

    it("calendarDateIn depends on the given zone only", () => {
      expect(calendarDateIn("2024-03-31T20:00:00.000Z", "UTC")).toBe("2024-03-31");
      expect(calendarDateIn("2024-03-31T20:00:00.000Z", "Asia/Kolkata")).toBe("2024-04-01");
      expect(calendarDateIn("2024-04-01T03:00:00.000Z", "America/Los_Angeles")).toBe("2024-03-31");
    });
  });
}

describe("attribution index", () => {
  it("keeps users apart and answers null for unknown users", () => {
    const index = buildAttributionIndex(
      [
        ms("9", { userId: "a" }),
        ms("3", { userId: "b", joinedOn: "2024-02-01" }),
        ms("4", { userId: "c", firstSeenExited: true, active: false }),
      ],
      "UTC",
    );
    expect(index.groupOf("a", "2024-01-15")).toBe("9");
    expect(index.groupOf("b", "2024-01-15")).toBeNull();
    expect(index.groupOf("b", "2024-02-15")).toBe("3");
    expect(index.groupOf("c", "2024-02-15")).toBeNull();
    expect(index.groupOf("zzz", "2024-02-15")).toBeNull();
    expect(index.users).toBe(2);
  });

  it("rejects a date that is not YYYY-MM-DD with a stable code", () => {
    const index = buildAttributionIndex([ms("9")], "UTC");
    for (const bad of ["20240115", "2024/01/15", "2024-13-01", ""]) {
      expect(() => index.groupOf("u1", bad)).toThrow(
        expect.objectContaining({ code: "ATTRIBUTION_BAD_DATE" }),
      );
      expect(() => groupOfMemberOn([ms("9")], bad, "UTC")).toThrow(
        expect.objectContaining({ code: "ATTRIBUTION_BAD_DATE" }),
      );
    }
  });

  it("agrees with groupOfMemberOn on random histories", () => {
    const date = fc
      .date({
        min: new Date("2023-01-01T00:00:00Z"),
        max: new Date("2025-12-31T00:00:00Z"),
        noInvalidDate: true,
      })
      .map((d) => d.toISOString().slice(0, 10));
    const instant = fc
      .date({
        min: new Date("2023-01-01T00:00:00Z"),
        max: new Date("2025-12-31T00:00:00Z"),
        noInvalidDate: true,
      })
      .map((d) => d.toISOString());
    const membership = fc.record({
      groupId: fc.constantFrom("9", "10", "11", "0100"),
      userId: fc.constantFrom("a", "b", "c"),
      defaultGroup: fc.boolean(),
      active: fc.boolean(),
      joinedOn: fc.option(date),
      exitSeenAt: fc.option(instant),
      firstSeenExited: fc.boolean(),
      previousStints: fc.array(fc.record({ joinedOn: fc.option(date), exitSeenAt: instant }), {
        maxLength: 2,
      }),
    });
    fc.assert(
      fc.property(
        fc.array(membership, { maxLength: 8 }),
        fc.array(date, { minLength: 1, maxLength: 5 }),
        fc.constantFrom("UTC", "Asia/Kolkata", "America/Los_Angeles"),
        (parts, dates, tz) => {
          const all = parts.map((p) => ms(p.groupId, p));
          const index = buildAttributionIndex(all, tz);
          for (const userId of ["a", "b", "c"]) {
            const mine = all.filter((m) => m.userId === userId);
            for (const d of dates) {
              const g = index.groupOf(userId, d);
              expect(g).toBe(groupOfMemberOn(mine, d, tz));
              if (g !== null) expect(mine.some((m) => m.groupId === g && !m.firstSeenExited)).toBe(true);
            }
          }
        },
      ),
    );
  });
});

describe("groupsDuring: the groups a user is attributed to on some date of a range", () => {
  it("equals the groups of groupOf over every day of the range", () => {
    const day = (n: number) => new Date(Date.UTC(2026, 9, 1) + n * 86_400_000).toISOString().slice(0, 10);
    const membership = fc.record({
      groupId: fc.constantFrom("1", "2", "10"),
      defaultGroup: fc.boolean(),
      joinedOn: fc.option(fc.integer({ min: -5, max: 40 }).map(day), { nil: null }),
      exit: fc.option(fc.integer({ min: -5, max: 40 }), { nil: null }),
    });
    fc.assert(
      fc.property(
        fc.array(membership, { maxLength: 4 }),
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: 0, max: 30 }),
        (list, a, b) => {
          const index = buildAttributionIndex(
            list.map((x) =>
              ms(x.groupId, {
                userId: "u",
                defaultGroup: x.defaultGroup,
                joinedOn: x.joinedOn,
                active: x.exit === null,
                exitSeenAt: x.exit === null ? null : `${day(x.exit)}T12:00:00Z`,
              }),
            ),
            "UTC",
          );
          const [from, to] = [Math.min(a, b), Math.max(a, b)];
          const want = new Set<string>();
          for (let d = from; d <= to; d++) {
            const g = index.groupOf("u", day(d));
            if (g !== null) want.add(g);
          }
          expect(new Set(index.groupsDuring("u", day(from), day(to)))).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("compareGroupIds: numeric order of decimal ids, then text order", () => {
  /** The rule as written: BigInt order for two digit strings, text order otherwise and for ties. */
  const reference = (a: string, b: string): number => {
    if (/^\d+$/.test(a) && /^\d+$/.test(b) && BigInt(a) !== BigInt(b)) return BigInt(a) < BigInt(b) ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  };

  it("orders ids as the reference does: leading zeros, 19+ digits, ties, non-digits, empty", () => {
    const ids = [
      "",
      "0",
      "00",
      "9",
      "09",
      "10",
      "010",
      "99",
      "100",
      "9223372036854775807",
      "9223372036854775808",
      "09223372036854775808",
      "12345678901234567890",
      "1a",
      "a",
      "-1",
      " 1",
    ];
    for (const a of ids)
      for (const b of ids) expect(Math.sign(compareGroupIds(a, b)), `${a} vs ${b}`).toBe(reference(a, b));
    const id = fc.oneof(fc.stringMatching(/^0{0,2}\d{1,22}$/), fc.string({ maxLength: 4 }));
    fc.assert(fc.property(id, id, (a, b) => Math.sign(compareGroupIds(a, b)) === reference(a, b)));
  });
});
