import { describe, expect, it } from "vitest";
import { type Capabilities, PeriodAggregator } from "../../lib/domain/aggregate.ts";
import { buildAttributionIndex } from "../../lib/domain/attribution.ts";
import { formatThousandths, parseThousandths } from "../../lib/domain/decimal.ts";
import type { GroupMeta, Membership } from "../../lib/domain/membership.ts";
import { renderCsv, safeCell } from "../../lib/domain/report.ts";
import { Upserter } from "../../lib/domain/upsert.ts";
import { membership } from "../support/membership.ts";

const TZ = "UTC";
const ALL: Capabilities = {
  points: true,
  eventName: true,
  redemptionSummary: true,
  members: true,
  rewards: true,
};

const m = membership;

function g(groupId: string, loyaltyPoints = "100.5", currentSlab = "Gold"): GroupMeta {
  return {
    groupId,
    externalId: `ext-${groupId}`,
    name: `Group ${groupId}`,
    status: "ACTIVE",
    programs: [
      { programId: "1", loyaltyPoints, currentSlab },
      { programId: "2", loyaltyPoints: "0.25", currentSlab: "Silver" },
    ],
    syncedAt: "2026-12-01T00:00:00Z",
  };
}

// points row: event_id, user_id, event_date, allocated, deducted, deduction_type, event_name, version
/** Staged decimals are integer thousandths. */
const th = (decimal: string) => String(parseThousandths(decimal));
const pts = (id: string, user: string, date: string, alloc: string, ded = "0", type = "", name = "") => [
  id,
  user,
  date,
  th(alloc),
  th(ded),
  type,
  name,
  "0",
];
// redemption row: event_id, user_id, event_date, points_redeemed, redemption_type, version
const red = (id: string, user: string, date: string, points: string, type: string) => [
  id,
  user,
  date,
  th(points),
  type,
  "0",
];

function run(memberships: Membership[], groups: GroupMeta[], feed: (a: PeriodAggregator) => void, cap = ALL) {
  const agg = new PeriodAggregator("2026-10", buildAttributionIndex(memberships, TZ));
  feed(agg);
  return agg.finish({
    groups,
    memberships,
    members: new Map([
      // staged Members rows: decimals in thousandths
      ["1", ["1", "1000000", "5000000", "250750", "Gold", "0"]],
      ["2", ["2", "-20500", "100000", "", "Silver", "0"]],
    ]),
    capabilities: cap,
    today: "2026-12-03",
  });
}

describe("newest version wins (invariant 2)", () => {
  it("keeps the highest version, then the latest delivery, then the larger file id", () => {
    const u = new Upserter();
    u.add("e1", 5, 100, "a", ["old"]);
    u.add("e1", 7, 50, "b", ["new"]);
    u.add("e1", 6, 999, "c", ["older-but-later-delivery"]);
    u.add("e2", 1, 100, "a", ["first"]);
    u.add("e2", 1, 200, "b", ["redelivered"]);
    u.add("e3", 1, 100, "b", ["b"]);
    u.add("e3", 1, 100, "a", ["a"]);
    expect([...u.values()]).toEqual([["new"], ["redelivered"], ["b"]]);
  });
});

describe("PeriodAggregator", () => {
  it("sums every figure per group, exactly, by deduction and redemption type", () => {
    const r = run([m("10", "1"), m("10", "2")], [g("10")], (a) => {
      a.addRow("points", pts("1", "1", "2026-10-01", "100.1", "0", "", "grouptransactionadd"));
      a.addRow("points", pts("2", "2", "2026-10-02", "0.2"));
      a.addRow("points", pts("3", "1", "2026-10-03", "0", "10.5", "redeemed"));
      a.addRow("points", pts("4", "1", "2026-10-03", "0", "1", "expired"));
      a.addRow("points", pts("5", "1", "2026-10-03", "0", "2", "return"));
      a.addRow("points", pts("6", "1", "2026-10-03", "0", "3", "return_historical"));
      a.addRow("points", pts("7", "1", "2026-10-03", "0", "4", "redemption_reversal"));
      a.addRow("points", pts("8", "1", "2026-10-03", "0", "5", "expiry_reverted"));
      a.addRow("points", pts("9", "2", "2026-11-01", "999")); // another period: ignored
      a.addRow("points_redemption_summary", red("20", "2", "2026-10-05", "7.125", "group_redemption"));
      a.addRow("points_redemption_summary", red("21", "1", "2026-10-05", "3", "redemption"));
      a.addRow("points_redemption_summary", red("22", "1", "2026-10-05", "3", "reversal"));
      a.addRow("rewards", ["30", "1", "2026-10-07", "1", "0"]);
      a.addRow("rewards", ["31", "1", "2026-10-07", "0", "0"]);
    });
    const [row] = r.groupSummary;
    expect(row).toMatchObject({
      period: "2026-10",
      group_id: "10",
      members_total: "2",
      members_active_in_period: "2",
      points_awarded: "100.3",
      group_transaction_points: "100.1",
      points_redeemed: "10.5",
      points_expired: "1",
      points_returned: "5",
      points_reversed: "9",
      group_wallet_redemptions: "1",
      group_wallet_points_redeemed: "7.125",
      member_redemptions: "1",
      member_points_redeemed: "3",
      members_points_balance: "979.5",
      members_lifetime_points: "5100",
      members_lifetime_purchases: "250.75",
      group_wallet_balance: "100.75",
      group_tier: "Gold",
      group_reward_redemptions: "1",
    });
  });

  it("shows empty, never 0, where the exports cannot supply a figure; 0 where they can", () => {
    const r = run([m("10", "1")], [g("10"), g("11")], () => undefined, {
      points: true,
      eventName: false,
      redemptionSummary: false,
      members: false,
      rewards: false,
    });
    const [a, b] = r.groupSummary;
    for (const row of [a, b]) {
      expect(row?.points_awarded).toBe("0");
      expect(row?.group_transaction_points).toBe("");
      expect(row?.group_wallet_redemptions).toBe("");
      expect(row?.member_points_redeemed).toBe("");
      expect(row?.members_points_balance).toBe("");
      expect(row?.group_reward_redemptions).toBe("");
    }
    expect(b?.members_total).toBe("0");
  });

  it("attributes by membership on the event date; unattributed rows are reported per member", () => {
    const ms = [
      m("10", "1", { joinedOn: "2026-10-15" }), // joined mid-period
      m("9", "2", { active: false, exitSeenAt: "2026-12-01T00:00:00Z" }), // exit observed later: counts
      m("9", "3", { active: false, firstSeenExited: true }), // first seen exited: never
      m("10", "4", { defaultGroup: true }),
      m("9", "4"), // default wins over the smaller id
      m("10", "5"),
      m("9", "5"), // no default: numerically smallest id (9 < 10)
    ];
    const r = run(ms, [g("9"), g("10")], (a) => {
      a.addRow("points", pts("1", "1", "2026-10-14", "1"));
      a.addRow("points", pts("2", "1", "2026-10-15", "2"));
      a.addRow("points", pts("3", "2", "2026-10-20", "4"));
      a.addRow("points", pts("4", "3", "2026-10-20", "8"));
      a.addRow("points", pts("5", "4", "2026-10-20", "16"));
      a.addRow("points", pts("6", "5", "2026-10-20", "32"));
      a.addRow("points", pts("7", "6", "2026-10-20", "64", "1", "REDEEMED".toLowerCase()));
      a.addRow("points_redemption_summary", red("8", "6", "2026-10-21", "1", "redemption"));
    });
    const byGroup = Object.fromEntries(r.groupSummary.map((x) => [x.group_id, x]));
    expect(r.groupSummary.map((x) => x.group_id)).toEqual(["9", "10"]);
    expect(byGroup["9"]?.points_awarded).toBe("36");
    expect(byGroup["10"]?.points_awarded).toBe("18");
    expect(byGroup["9"]?.members_total).toBe("2"); // users 2 and 5
    expect(byGroup["10"]?.members_total).toBe("2"); // users 1 and 4
    expect(r.unattributed).toEqual([
      { period: "2026-10", user_id: "1", rows: "1", points_awarded: "1", points_redeemed: "0" },
      { period: "2026-10", user_id: "3", rows: "1", points_awarded: "8", points_redeemed: "0" },
      { period: "2026-10", user_id: "6", rows: "2", points_awarded: "64", points_redeemed: "1" },
    ]);
  });

  it("counts members_total on today's date for the current month", () => {
    const ms = [m("10", "1", { joinedOn: "2026-12-10" }), m("10", "2", { joinedOn: "2026-12-02" })];
    const agg = new PeriodAggregator("2026-12", buildAttributionIndex(ms, TZ));
    const r = agg.finish({
      groups: [g("10")],
      memberships: ms,
      members: new Map(),
      capabilities: ALL,
      today: "2026-12-03",
    });
    expect(r.groupSummary[0]?.members_total).toBe("1");
  });

  it("lists group members with their figures", () => {
    const r = run([m("10", "1", { role: "PRIMARY" })], [g("10")], (a) => {
      a.addRow("points", pts("1", "1", "2026-10-01", "5"));
      a.addRow("points", pts("2", "1", "2026-10-01", "0", "2", "redeemed"));
    });
    expect(r.groupMembers).toEqual([
      {
        period: "2026-10",
        group_id: "10",
        user_id: "1",
        role: "PRIMARY",
        tier: "Gold",
        points_awarded: "5",
        points_redeemed: "2",
        points_balance: "1000",
        lifetime_purchases: "250.75",
        in_members_total: "yes",
      },
    ]);
  });

  it("marks which member rows the group's members_* figures count, so the files reconcile", () => {
    // User 1 moved from group 9 to its default group 10 mid-October: active in both, counted in 10 only.
    const ms = [m("9", "1"), m("10", "1", { defaultGroup: true, joinedOn: "2026-10-12" }), m("9", "2")];
    const r = run(ms, [g("9"), g("10")], (a) => {
      a.addRow("points", pts("1", "1", "2026-10-05", "5"));
      a.addRow("points", pts("2", "1", "2026-10-20", "7"));
      a.addRow("points", pts("3", "2", "2026-10-20", "1"));
    });
    const rows = (group: string) => r.groupMembers.filter((x) => x.group_id === group);
    expect(rows("9").map((x) => [x.user_id, x.in_members_total])).toEqual([
      ["1", "no"],
      ["2", "yes"],
    ]);
    expect(rows("10").map((x) => [x.user_id, x.in_members_total])).toEqual([["1", "yes"]]);
    for (const s of r.groupSummary) {
      const counted = rows(s.group_id).filter((x) => x.in_members_total === "yes");
      const balance = counted.reduce((t, x) => t + BigInt(parseThousandths(x.points_balance) as number), 0n);
      expect(formatThousandths(balance)).toBe(s.members_points_balance);
      expect(String(counted.length)).toBe(s.members_total);
    }
  });
});

describe("group_members lists every member of the group during the period", () => {
  it("a member who moved mid-month with no rows before the move is listed in both groups, counted in one", () => {
    // User 1 was in group 9 from 1 to 11 October, then in its default group 10; its only row is on the 20th.
    const ms = [m("9", "1"), m("10", "1", { defaultGroup: true, joinedOn: "2026-10-12" }), m("9", "2")];
    const r = run(ms, [g("9"), g("10")], (a) => a.addRow("points", pts("1", "1", "2026-10-20", "7")));
    expect(r.groupMembers.map((x) => [x.group_id, x.user_id, x.points_awarded, x.in_members_total])).toEqual([
      ["9", "1", "0", "no"],
      ["9", "2", "0", "yes"],
      ["10", "1", "7", "yes"],
    ]);
  });

  it("leaves out members who joined after the period or left before it", () => {
    const ms = [
      m("9", "1", { joinedOn: "2026-11-02" }),
      m("9", "2", { active: false, exitSeenAt: "2026-09-20T10:00:00Z" }),
      m("9", "3", { active: false, exitSeenAt: "2026-10-02T10:00:00Z" }),
    ];
    const r = run(ms, [g("9")], () => undefined);
    expect(r.groupMembers.map((x) => [x.user_id, x.in_members_total])).toEqual([["3", "no"]]);
  });
});

describe("report cells are safe to open in a spreadsheet", () => {
  it.each([
    ['=HYPERLINK("x")', '\'=HYPERLINK("x")'],
    ["+1+2", "'+1+2"],
    ["@SUM(A1)", "'@SUM(A1)"],
    ["-cmd", "'-cmd"],
    ["-12.5", "-12.5"],
    ["Gold", "Gold"],
    ["", ""],
  ])("%s -> %s", (v, want) => expect(safeCell(v)).toBe(want));

  it("renders RFC 4180 CSV with CRLF and quotes where needed", () => {
    // A UTF-8 byte order mark first, so that Excel reads accented names (Müller, Zoë) as UTF-8.
    expect(renderCsv(["a", "b"], [{ a: 'x,"y"', b: "=1" }])).toBe('\uFEFFa,b\r\n"x,""y""",\'=1\r\n');
  });
});

describe("attribution rules and figures (gaps)", () => {
  it("an exit observed mid-period: rows before the exit date count to the group, rows from it are unattributed", () => {
    const ms = [m("10", "1", { active: false, exitSeenAt: "2026-10-20T12:00:00Z" }), m("10", "2")];
    const r = run(ms, [g("10")], (a) => {
      a.addRow("points", pts("1", "1", "2026-10-19", "1"));
      a.addRow("points", pts("2", "1", "2026-10-20", "2"));
      a.addRow("points_redemption_summary", red("3", "1", "2026-10-25", "4", "group_redemption"));
    });
    expect(r.groupSummary[0]).toMatchObject({
      points_awarded: "1",
      members_total: "1", // on the period's last day only user 2 is in the group
      members_active_in_period: "1",
      group_wallet_redemptions: "0",
    });
    expect(r.unattributed).toEqual([
      { period: "2026-10", user_id: "1", rows: "2", points_awarded: "2", points_redeemed: "0" },
    ]);
  });

  it("a default group counts only from its own joined date; before it the other group wins", () => {
    const ms = [m("20", "1", { defaultGroup: true, joinedOn: "2026-10-10" }), m("30", "1")];
    const r = run(ms, [g("20"), g("30")], (a) => {
      a.addRow("points", pts("1", "1", "2026-10-09", "1"));
      a.addRow("points", pts("2", "1", "2026-10-10", "2"));
    });
    const by = Object.fromEntries(r.groupSummary.map((x) => [x.group_id, x]));
    expect([by["20"]?.points_awarded, by["30"]?.points_awarded]).toEqual(["2", "1"]);
    expect([by["20"]?.members_total, by["30"]?.members_total]).toEqual(["1", "0"]); // one group per member
  });

  it("several groups, no default: the numerically smallest id wins (not the text order)", () => {
    const ms = [m("100", "1"), m("99", "1")];
    const r = run(ms, [g("99"), g("100")], (a) => a.addRow("points", pts("1", "1", "2026-10-09", "5")));
    expect(r.groupSummary.map((x) => [x.group_id, x.points_awarded])).toEqual([
      ["99", "5"],
      ["100", "0"],
    ]);
  });

  it("keeps every reversal kind in points_reversed, apart from redemptions (never netted)", () => {
    const r = run([m("10", "1")], [g("10")], (a) => {
      a.addRow("points", pts("1", "1", "2026-10-02", "0", "10", "redeemed"));
      a.addRow("points", pts("2", "1", "2026-10-02", "0", "1", "redemption_reversal"));
      a.addRow("points", pts("3", "1", "2026-10-02", "0", "2", "redemption_reverted"));
      a.addRow("points", pts("4", "1", "2026-10-02", "0", "4", "expiry_reverted"));
      a.addRow("points", pts("5", "1", "2026-10-02", "0", "8", "redeemed_by_transfer_reverted"));
      a.addRow("points", pts("6", "1", "2026-10-02", "0", "16", "manual_adjustment"));
      a.addRow("points_redemption_summary", red("7", "1", "2026-10-02", "3", "reversal"));
      a.addRow("points_redemption_summary", red("8", "1", "2026-10-02", "5", "reversal_on_return"));
    });
    expect(r.groupSummary[0]).toMatchObject({
      points_redeemed: "10",
      points_reversed: "15",
      points_expired: "0",
      points_returned: "0",
      member_redemptions: "0",
      member_points_redeemed: "0",
      group_wallet_redemptions: "0",
      members_active_in_period: "1",
    });
  });

  it("empty versus zero: no Points export empties the points figures but keeps redemption zeros", () => {
    const r = run([m("10", "1")], [g("10", "not-a-number")], () => undefined, {
      points: false,
      eventName: false,
      redemptionSummary: true,
      members: true,
      rewards: false,
    });
    expect(r.groupSummary[0]).toMatchObject({
      points_awarded: "",
      points_redeemed: "",
      points_reversed: "",
      group_transaction_points: "",
      group_wallet_redemptions: "0",
      group_wallet_points_redeemed: "0",
      members_points_balance: "1000",
      members_active_in_period: "0",
      group_wallet_balance: "0.25", // the unreadable program balance is skipped, not counted as 0
    });
    expect(r.groupMembers[0]?.points_awarded).toBe("");
  });

  it("members in no group on any date: all their rows and figures are unattributed, no group counts them", () => {
    const r = run([], [g("10")], (a) => {
      a.addRow("points", pts("1", "7", "2026-10-02", "1.5"));
      a.addRow("points", pts("2", "7", "2026-10-03", "0", "0.5", "redeemed"));
      a.addRow("points_redemption_summary", red("3", "7", "2026-10-03", "0.5", "redemption"));
    });
    expect(r.groupSummary[0]).toMatchObject({
      members_total: "0",
      members_active_in_period: "0",
      points_awarded: "0",
    });
    expect(r.unattributed).toEqual([
      { period: "2026-10", user_id: "7", rows: "3", points_awarded: "1.5", points_redeemed: "0.5" },
    ]);
  });
});

describe("aggregates of key-hash parts merge into the aggregate of all rows (fan-out)", () => {
  it("any split of the rows over parts, each state through JSON, gives the same report", async () => {
    const fc = (await import("fast-check")).default;
    const memberships = [
      m("10", "1"),
      m("10", "2", { active: false, exitSeenAt: "2026-10-15T00:00:00Z" }),
      m("9", "3"),
    ];
    const groups = [g("9"), g("10")];
    const index = buildAttributionIndex(memberships, TZ);
    const row = fc.oneof(
      fc
        .tuple(
          fc.constantFrom("1", "2", "3", "4"),
          fc.integer({ min: 1, max: 31 }),
          fc.integer({ min: -5000, max: 5000 }),
          fc.constantFrom("", "redeemed", "expired", "return", "redemption_reversal"),
          fc.constantFrom("", "grouptransactionadd"),
        )
        .map(([u, d, n, t, name]) => ({
          kind: "p" as const,
          row: pts(
            `e${d}${u}`,
            u,
            `2026-10-${String(d).padStart(2, "0")}`,
            String(n / 8),
            t ? String(Math.abs(n)) : "0",
            t,
            name,
          ),
        })),
      fc
        .tuple(
          fc.constantFrom("1", "2", "3"),
          fc.integer({ min: 1, max: 31 }),
          fc.constantFrom("group_redemption", "redemption"),
        )
        .map(([u, d, t]) => ({
          kind: "r" as const,
          row: red(`r${d}${u}`, u, `2026-10-${String(d).padStart(2, "0")}`, "12.5", t),
        })),
    );
    const feed = (a: PeriodAggregator, rows: { kind: "p" | "r"; row: string[] }[]) => {
      for (const r of rows)
        r.kind === "p" ? a.addRow("points", r.row) : a.addRow("points_redemption_summary", r.row);
    };
    fc.assert(
      fc.property(fc.array(fc.tuple(row, fc.integer({ min: 0, max: 3 })), { maxLength: 60 }), (rows) => {
        const whole = run(memberships, groups, (a) =>
          feed(
            a,
            rows.map(([r]) => r),
          ),
        );
        const merged = run(memberships, groups, (a) => {
          for (let part = 0; part < 4; part++) {
            const p = new PeriodAggregator("2026-10", index);
            feed(
              p,
              rows.filter(([, k]) => k === part).map(([r]) => r),
            );
            a.merge(PeriodAggregator.fromState(JSON.parse(JSON.stringify(p.toState())), index));
          }
        });
        expect(merged).toEqual(whole);
      }),
      { numRuns: 100 },
    );
  });

  it("refuses to merge another period's aggregate", () => {
    const index = buildAttributionIndex([], TZ);
    expect(() =>
      new PeriodAggregator("2026-10", index).merge(new PeriodAggregator("2026-11", index)),
    ).toThrow(/cannot merge period 2026-11 into 2026-10/);
  });

  it("reports every further version of a key next to the kept one (cross-period links)", () => {
    const seen: string[] = [];
    const u = new Upserter<string>((kept, other) => seen.push(`${kept}<${other}`));
    u.add("e1", 1, 1, "a", "2026-10");
    u.add("e1", 2, 1, "b", "2026-11");
    u.add("e1", 1, 1, "c", "2026-09");
    expect(seen).toEqual(["2026-10<2026-11", "2026-11<2026-09"]);
    expect([...u.values()]).toEqual(["2026-11"]);
  });
});

describe("sums stay exact past 2^53 thousandths (invariant 4)", () => {
  it("adds decimal(15,3) maxima and larger staged values exactly, any order, also through merge", () => {
    const values = [
      "999999999999999",
      "999999999999999",
      "-999999999999999",
      "4503599627370497", // just above 2^52
      "123456789012345678901", // beyond any float
      "1",
      ...Array(20).fill("999999999999999"),
    ];
    const exact = values.reduce((t, v) => t + BigInt(v), 0n);
    const ms = [m("9", "1")];
    const index = buildAttributionIndex(ms, TZ);
    const row = (v: string, i: number) => [
      "",
      "1",
      `2026-10-${String((i % 28) + 1).padStart(2, "0")}`,
      v,
      "0",
      "",
      "",
      "0",
    ];
    const whole = new PeriodAggregator("2026-10", index);
    values.forEach((v, i) => {
      whole.addRow("points", row(v, i));
    });
    const merged = new PeriodAggregator("2026-10", index);
    for (const half of [values.slice(0, 7), values.slice(7)]) {
      const p = new PeriodAggregator("2026-10", index);
      half.forEach((v, i) => {
        p.addRow("points", row(v, i));
      });
      merged.merge(PeriodAggregator.fromState(JSON.parse(JSON.stringify(p.toState())), index));
    }
    for (const agg of [whole, merged]) {
      const r = agg.finish({
        groups: [g("9")],
        memberships: ms,
        members: new Map(),
        capabilities: ALL,
        today: "2026-12-03",
      });
      expect(r.groupSummary[0]?.points_awarded).toBe(formatThousandths(exact));
      expect(r.groupMembers[0]?.points_awarded).toBe(formatThousandths(exact));
    }
  });
});
