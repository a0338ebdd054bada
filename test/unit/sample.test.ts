/**
 * The sample generator and its truth oracle: deterministic bytes, documented headers, the attribution
 * cases present, and the truth consistent with an independent re-read of the files.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { gunzipSync } from "node:zlib";
import { parse } from "csv-parse/sync";
import { unzipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatThousandths } from "../../infra/sample/decimal.ts";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import type { SimState } from "../../infra/sample/membership-types.ts";
import {
  attribute,
  computeTruth,
  GROUP_MEMBERS_COLUMNS,
  GROUP_SUMMARY_COLUMNS,
  observe,
} from "../../infra/sample/truth.ts";
import type { ManifestFile, Truth, TruthRow } from "../../infra/sample/types.ts";

// The documented column names (DESIGN.md / CAPILLARY.md), written out here on purpose.
const POINTS_HEADER = [
  "event_id",
  "dim_event_user_id",
  "dim_event_date_id",
  "dim_event_time_id",
  "allocated_points",
  "deducted_points",
  "dim_points_event_type_id",
  "dim_deduction_type_id",
  "deduction_summary_id",
  "redemption_id",
  "bill_id",
  "bill_number",
  "dim_event_zone_till_id",
  "dim_category_id",
  "dim_points_promotion_id",
  "event_name",
  "dim_event_program_id",
  "dim_latest_updated_date_id",
  "dim_latest_updated_time_id",
  "auto_update_time",
];
const SUMMARY_RAW =
  "event_id, points_redeemed, point_category_id, dim_redemption_type_id, dim_event_user_id, dim_event_date_id, dim_event_zone_till_id, dim_redemption_program_id, points_redemption_time, auto_update_time, redemption_bill_id, redemption_bill_number, redemption_id, external_reference_number, notes, source_type, reference_id".split(
    ", ",
  );
const SUMMARY_DISPLAY =
  "Event Id, Points Redeemed, Point Category Id, Redemption Type, User Id, Event Date, Till Id, Program Id, Redemption Time, Auto Update Time, Bill Id, Bill Number, Redemption Id, External Reference Number, Notes, Source Type, Reference Id".split(
    ", ",
  );
const MEMBERS_HEADER =
  "dim_event_user_id, dim_event_date_id, loyalty_id, loyalty_points, lifetime_points, lifetime_purchased, redeemed_points, expired_points, number_of_visits, total_bill_amount, User.slab_name, User.slab_number, auto_update_time".split(
    ", ",
  );

const OPTS = { seed: 42, months: ["2026-10", "2026-11"], now: new Date("2026-12-03T06:00:00Z") };

interface Csv {
  name: string;
  template: ManifestFile["template"];
  delivery: number;
  raw: string;
  header: string[];
  rows: Record<string, string>[];
}

/** Re-reads every delivered CSV (decompressing as needed) independently of the generator. */
async function readCsvs(dir: string, files: ManifestFile[]): Promise<Csv[]> {
  const out: Csv[] = [];
  const add = (name: string, f: ManifestFile, bytes: Uint8Array): void => {
    const raw = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
    const records: string[][] = parse(raw.replace(/^\uFEFF/, ""), { skip_empty_lines: true });
    const [header = [], ...data] = records;
    const rows = data.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ""])));
    out.push({ name, template: f.template, delivery: f.deliveryOrder, raw, header, rows });
  };
  for (const f of files) {
    const bytes = await readFile(join(dir, f.key));
    if (f.packaging === "gzip") add(f.key, f, gunzipSync(bytes));
    else if (f.packaging === "zip") {
      for (const [name, data] of Object.entries(unzipSync(bytes))) add(`${f.key}!${name}`, f, data);
    } else add(f.key, f, bytes);
  }
  return out;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** Independent thousandths parser; null when not a decimal with at most 3 places. */
function milli(text: string | undefined): bigint | null {
  const m = /^(-?)(\d+)(?:\.(\d{1,3}))?$/.exec(text ?? "");
  if (!m) return null;
  const v = BigInt(m[2] ?? "0") * 1000n + BigInt((m[3] ?? "").padEnd(3, "0"));
  return m[1] === "-" ? -v : v;
}

const validDate = (d: string | undefined): boolean => {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(d ?? "");
  if (!m) return false;
  const t = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return t.getUTCMonth() === Number(m[2]) - 1 && t.getUTCDate() === Number(m[3]);
};
const isId = (s: string | undefined): boolean => /^\d+$/.test(s ?? "");

const rowsOf = (truth: Truth, pred: (r: TruthRow) => boolean): TruthRow[] => truth.groupSummary.filter(pred);
const sumField = (rows: TruthRow[], field: string): bigint =>
  rows.reduce((total, r) => {
    const v = milli(r[field]);
    if (v === null) throw new Error(`${field} is not a decimal: ${r[field]}`);
    return total + v;
  }, 0n);

describe("sample generator", () => {
  let dirA = "";
  let dirB = "";
  let dirC = "";
  let a: GeneratedSample;
  let csvs: Csv[] = [];
  let initial: SimState;
  let current: SimState;

  beforeAll(async () => {
    dirA = await mkdtemp(join(tmpdir(), "sample-a-"));
    dirB = await mkdtemp(join(tmpdir(), "sample-b-"));
    dirC = await mkdtemp(join(tmpdir(), "sample-c-"));
    a = await buildSample({ ...OPTS, outDir: dirA });
    await buildSample({ ...OPTS, outDir: dirB });
    await buildSample({ ...OPTS, seed: 43, outDir: dirC });
    csvs = await readCsvs(dirA, a.manifest.files);
    initial = JSON.parse(await readFile(join(dirA, "membership/initial.json"), "utf8")) as SimState;
    current = JSON.parse(await readFile(join(dirA, "membership/current.json"), "utf8")) as SimState;
  }, 60_000);

  afterAll(async () => {
    for (const d of [dirA, dirB, dirC]) if (d) await rm(d, { recursive: true, force: true });
  });

  it("is deterministic: same seed, same bytes; another seed, other bytes", async () => {
    const files = await listFiles(dirA);
    expect(files).toEqual(await listFiles(dirB));
    expect(files).toContain("truth.json");
    expect(files).toContain("manifest.json");
    expect(files).toContain("membership/initial.json");
    for (const f of files) {
      expect((await readFile(join(dirA, f))).equals(await readFile(join(dirB, f))), f).toBe(true);
    }
    expect((await readFile(join(dirA, "truth.json"))).equals(await readFile(join(dirC, "truth.json")))).toBe(
      false,
    );
  });

  it("writes what the manifest says, in delivery order, with the promised packaging", async () => {
    const { files } = a.manifest;
    expect(files.map((f) => f.deliveryOrder)).toEqual(files.map((_, i) => i));
    const times = files.map((f) => Date.parse(f.deliveredAt));
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    for (const f of files) {
      const bytes = await readFile(join(dirA, f.key));
      if (f.packaging === "gzip") expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b]);
      if (f.packaging === "zip") expect(bytes.subarray(0, 2).toString()).toBe("PK");
      if (f.packaging === "csv") expect(bytes[0]).not.toBe(0x1f);
    }
    const points = files.filter((f) => f.template === "points");
    expect(points.map((f) => f.packaging)).toEqual(["csv", "gzip", "csv"]);
    expect(points[0]?.key).toMatch(
      /^exports\/points\/GroupLoyalty_Points_\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.csv$/,
    );
    expect(points[1]?.key).toMatch(/^exports\/points\/GroupLoyalty_Points_[\d-]+$/);
    const zip = files.find((f) => f.packaging === "zip");
    expect(zip?.key).toMatch(
      /^exports\/points redemption summary\/GroupLoyalty_Points Redemption Summary_\d{13}\.zip$/,
    );
    expect(zip?.entries).toHaveLength(2);
    const summaries = files.filter((f) => f.template === "points_redemption_summary");
    expect(summaries.map((f) => [f.packaging, f.kind])).toEqual([
      ["zip", "full"],
      ["csv", "incremental"],
    ]);
    expect(summaries[1]?.key).toMatch(
      /^exports\/points redemption summary\/GroupLoyalty_Points Redemption Summary_[\d-]+\.csv$/,
    );
    expect(files.filter((f) => f.template === "members").map((f) => f.kind)).toEqual(["full", "incremental"]);
  });

  it("uses the documented column names, BOM and line ends as declared", () => {
    for (const c of csvs) {
      if (c.template === "points") expect([...c.header].sort(), c.name).toEqual([...POINTS_HEADER].sort());
      if (c.template === "members") expect([...c.header].sort(), c.name).toEqual([...MEMBERS_HEADER].sort());
    }
    const summaries = csvs.filter((c) => c.template === "points_redemption_summary");
    expect(summaries.map((c) => c.header)).toEqual([SUMMARY_RAW, SUMMARY_DISPLAY, SUMMARY_RAW]);
    expect(summaries[2]?.raw.startsWith("\uFEFF")).toBe(true);
    expect(csvs.find((c) => c.template === "points")?.header).toEqual(POINTS_HEADER);
    expect(csvs.find((c) => c.template === "members")?.header).toEqual(MEMBERS_HEADER);
    const [first, second] = csvs.filter((c) => c.template === "points");
    expect(first?.raw.startsWith("\uFEFF")).toBe(false);
    expect(first?.raw.includes("\r\n")).toBe(false);
    expect(second?.raw.startsWith("\uFEFF")).toBe(true);
    expect(
      second?.raw
        .split("\n")
        .slice(0, -1)
        .every((l) => l.endsWith("\r")),
    ).toBe(true);
  });

  it("counts rows as the data-quality truth says (read = accepted + rejected)", () => {
    const dq = a.truth.dataQuality;
    expect(dq.map((r) => r.file)).toEqual(csvs.map((c) => c.name));
    for (const [i, c] of csvs.entries()) {
      const r = dq[i] as TruthRow;
      expect(Number(r.rows_read), c.name).toBe(c.rows.length);
      expect(Number(r.rows_accepted) + Number(r.rows_rejected)).toBe(Number(r.rows_read));
      expect(Number(r.rows_rejected)).toBeLessThanOrEqual(3);
      expect(r.template).toBe(c.template);
    }
    for (const f of a.manifest.files) {
      const read = csvs.filter((c) => c.name.split("!")[0] === f.key).reduce((n, c) => n + c.rows.length, 0);
      expect(read, f.key).toBe(f.rows);
    }
    const rejected = dq.reduce((n, r) => n + Number(r.rows_rejected), 0);
    expect(a.manifest.badRows).toHaveLength(rejected);
    const bad = a.manifest.badRows.map((b) => b.reason).join("\n");
    for (const s of ["12x", "1345", "event_id is empty", "abc"]) expect(bad).toContain(s);
  });

  it("has a truth consistent with an independent re-read of the files", () => {
    // Points: validate, keep the newest version per event_id, then add up.
    const newest = new Map<string, { v: string; row: Record<string, string> }>();
    let rejected = 0;
    for (const c of csvs.filter((x) => x.template === "points")) {
      for (const row of c.rows) {
        const ok =
          isId(row.event_id) &&
          isId(row.dim_event_user_id) &&
          validDate(row.dim_event_date_id) &&
          milli(row.allocated_points) !== null &&
          milli(row.deducted_points) !== null;
        if (!ok) {
          rejected++;
          continue;
        }
        const v = `${row.auto_update_time?.padStart(12, "0")}|${c.delivery}`;
        const old = newest.get(row.event_id as string);
        if (!old || v >= old.v) newest.set(row.event_id as string, { v, row });
      }
    }
    const dqRejectedPoints = a.truth.dataQuality
      .filter((r) => r.template === "points")
      .reduce((n, r) => n + Number(r.rows_rejected), 0);
    expect(rejected).toBe(dqRejectedPoints);
    let awarded = 0n;
    let redeemed = 0n;
    let expired = 0n;
    for (const { row } of newest.values()) {
      awarded += milli(row.allocated_points) ?? 0n;
      const t = (row.dim_deduction_type_id ?? "").toLowerCase();
      if (t === "redeemed") redeemed += milli(row.deducted_points) ?? 0n;
      if (t === "expired") expired += milli(row.deducted_points) ?? 0n;
    }
    const t = a.truth;
    expect(sumField(t.groupSummary, "points_awarded") + sumField(t.unattributed, "points_awarded")).toBe(
      awarded,
    );
    expect(sumField(t.groupSummary, "points_redeemed") + sumField(t.unattributed, "points_redeemed")).toBe(
      redeemed,
    );
    expect(sumField(t.groupSummary, "points_expired")).toBeLessThanOrEqual(expired);

    // Every accepted summary row is either attributed or counted in unattributed rows.
    const summaryRows = csvs
      .filter((c) => c.template === "points_redemption_summary")
      .flatMap((c) => c.rows.map((r) => Object.values(r)))
      .filter((v) => isId(v[0]) && isId(v[4]) && validDate(v[5]) && milli(v[1]) !== null);
    const walletAndMember = t.groupSummary.reduce(
      (n, r) => n + Number(r.group_wallet_redemptions) + Number(r.member_redemptions),
      0,
    );
    const unattributedRows = t.unattributed.reduce((n, r) => n + Number(r.rows), 0);
    expect(walletAndMember).toBeGreaterThan(0);
    expect(walletAndMember).toBeLessThanOrEqual(summaryRows.length);
    expect(unattributedRows).toBeGreaterThan(0);
    expect(unattributedRows).toBeLessThan(newest.size + summaryRows.length);
    // Size of the default sample.
    expect(newest.size).toBeGreaterThan(3000);
    expect(newest.size).toBeLessThan(6000);
    expect(summaryRows.length).toBeGreaterThan(250);
    expect(summaryRows.length).toBeLessThan(600);
  });

  it("shapes group_summary as the report contract says", () => {
    const t = a.truth;
    const periods = [...new Set(t.groupSummary.map((r) => r.period))];
    expect(periods).toEqual(OPTS.months);
    expect(t.groupSummary).toHaveLength(periods.length * current.groups.length);
    const key = (r: TruthRow): [string, bigint] => [r.period ?? "", BigInt(r.group_id ?? "0")];
    for (let i = 1; i < t.groupSummary.length; i++) {
      const [p0, g0] = key(t.groupSummary[i - 1] as TruthRow);
      const [p1, g1] = key(t.groupSummary[i] as TruthRow);
      expect(p0 < p1 || (p0 === p1 && g0 < g1)).toBe(true);
    }
    for (const r of t.groupSummary) {
      expect(Object.keys(r)).toEqual([...GROUP_SUMMARY_COLUMNS]);
      for (const v of Object.values(r)) expect(typeof v).toBe("string");
      expect(r.group_reward_redemptions).toBe("");
      for (const f of [
        "points_awarded",
        "points_redeemed",
        "members_points_balance",
        "group_wallet_balance",
      ]) {
        expect(r[f]).toMatch(/^-?(0|[1-9]\d*)(\.\d{0,2}[1-9])?$/);
        expect(r[f]).not.toBe("-0");
      }
      expect(r.members_total).toMatch(/^\d+$/);
    }
    const groupIds = t.groupSummary.filter((r) => r.period === OPTS.months[0]).map((r) => r.group_id);
    expect(groupIds.slice(0, 2)).toEqual(["9", "10"]);
    expect(t.unattributed.length).toBeGreaterThan(0);
    for (const r of t.unattributed)
      expect(Object.keys(r)).toEqual(["period", "user_id", "rows", "points_awarded", "points_redeemed"]);
  });

  it("contains every attribution case, and the oracle attributes them as DESIGN.md says", () => {
    const cases = a.manifest.cases;
    const syncs = [
      { date: "2026-12-03", state: initial },
      { date: "2026-12-03", state: current },
    ];
    const byUser = observe(syncs);
    const find = (state: SimState, g: string, u: string) =>
      state.groups.find((x) => x.id === g)?.members.find((m) => m.userId === u);
    const pointsOf = (u: string) =>
      csvs
        .filter((c) => c.template === "points")
        .flatMap((c) => c.rows.filter((r) => r.dim_event_user_id === u));
    const unattributedOf = (u: string) => a.truth.unattributed.filter((r) => r.user_id === u);
    const one = (name: string): { u: string; g: string[] } => {
      const c = cases[name];
      expect(c, name).toBeDefined();
      return { u: c?.userIds[0] ?? "", g: c?.groupIds ?? [] };
    };

    const nd = one("noDefaultSmallestNumericId");
    expect(nd.g).toEqual(["9", "10"]);
    expect(nd.u).toHaveLength(19);
    expect(find(current, "9", nd.u)?.defaultGroup).toBe(false);
    expect(find(current, "10", nd.u)?.defaultGroup).toBe(false);
    expect(attribute(byUser, nd.u, "20261101")).toBe("9");
    expect(unattributedOf(nd.u)).toEqual([]);

    const dw = one("defaultGroupWins");
    expect(find(current, dw.g[1] ?? "", dw.u)?.defaultGroup).toBe(true);
    expect(BigInt(dw.g[1] ?? "0")).toBeGreaterThan(BigInt(dw.g[0] ?? "0"));
    expect(attribute(byUser, dw.u, "20261015")).toBe(dw.g[1]);

    const dl = one("defaultGroupJoinedLater");
    const dlJoin = (find(current, dl.g[1] ?? "", dl.u)?.joinedOn ?? "").replaceAll("-", "");
    expect(dlJoin.slice(0, 6)).toBe("202610");
    const dlDates = pointsOf(dl.u).map((r) => r.dim_event_date_id ?? "");
    expect(dlDates.some((d) => d < dlJoin)).toBe(true);
    expect(dlDates).toContain(dlJoin);
    expect(attribute(byUser, dl.u, String(Number(dlJoin) - 1))).toBe(dl.g[0]);
    expect(attribute(byUser, dl.u, dlJoin)).toBe(dl.g[1]);

    const mid = one("joinedMidPeriod");
    const midJoin = (find(current, mid.g[0] ?? "", mid.u)?.joinedOn ?? "").replaceAll("-", "");
    expect(midJoin.slice(0, 6)).toBe("202610");
    const midDates = pointsOf(mid.u).map((r) => r.dim_event_date_id ?? "");
    expect(midDates.some((d) => d < midJoin)).toBe(true);
    expect(midDates.some((d) => d >= midJoin && d.startsWith("202610"))).toBe(true);
    expect(unattributedOf(mid.u).map((r) => r.period)).toEqual(["2026-10"]);

    const late = one("rowsBeforeJoinedOn");
    const lateJoin = (find(current, late.g[0] ?? "", late.u)?.joinedOn ?? "").replaceAll("-", "");
    expect(lateJoin.slice(0, 6)).toBe("202611");
    expect(pointsOf(late.u).some((r) => (r.dim_event_date_id ?? "") < lateJoin)).toBe(true);
    expect(attribute(byUser, late.u, "20261031")).toBeNull();
    expect(attribute(byUser, late.u, "20261130")).toBe(late.g[0]);

    const fo = one("firstSeenExitedWithOtherGroup");
    expect(find(initial, "9", fo.u)?.active).toBe(false);
    expect(find(initial, fo.g[1] ?? "", fo.u)?.active).toBe(true);
    expect(attribute(byUser, fo.u, "20261015")).toBe(fo.g[1]);

    for (const u of cases.firstSeenExited?.userIds ?? []) {
      expect(pointsOf(u).length, u).toBeGreaterThan(0);
      expect(attribute(byUser, u, "20261115")).toBeNull();
    }
    const fse = one("firstSeenExited");
    expect(find(initial, fse.g[0] ?? "", fse.u)?.active).toBe(false);
    expect(unattributedOf(fse.u).map((r) => r.period)).toEqual(OPTS.months);

    const ex = one("exitedAfterFirstSync");
    expect(find(initial, ex.g[0] ?? "", ex.u)?.active).toBe(true);
    expect(find(current, ex.g[0] ?? "", ex.u)?.active).toBe(false);
    expect(unattributedOf(ex.u)).toEqual([]);
    expect(attribute(byUser, ex.u, "20261130")).toBe(ex.g[0]);

    const nw = one("joinedAfterPeriods");
    expect(find(initial, nw.g[0] ?? "", nw.u)).toBeUndefined();
    expect(find(current, nw.g[0] ?? "", nw.u)?.active).toBe(true);
    expect(unattributedOf(nw.u).map((r) => r.period)).toEqual(OPTS.months);

    const statusOf = (g: string) => current.groups.find((x) => x.id === g)?.groupStatus;
    expect(statusOf(cases.inactiveGroup?.groupIds[0] ?? "")).toBe("INACTIVE");
    const deleted = cases.deletedGroup?.groupIds[0] ?? "";
    expect(statusOf(deleted)).toBe("DELETED");
    for (const r of rowsOf(a.truth, (x) => x.group_id === deleted)) {
      expect([r.members_total, r.members_active_in_period, r.points_awarded]).toEqual(["0", "0", "0"]);
    }

    const quiet = cases.noActivityInPeriod?.groupIds[0] ?? "";
    const [quietOct, quietNov] = rowsOf(a.truth, (x) => x.group_id === quiet);
    expect(quietOct?.points_awarded).not.toBe("0");
    expect(quietNov?.points_awarded).toBe("0");
    expect(quietNov?.members_active_in_period).toBe("0");
    expect(Number(quietNov?.members_total)).toBeGreaterThan(0);

    const grouped = new Set(current.groups.flatMap((g) => g.members.map((m) => m.userId)));
    const noGroup = cases.noGroup?.userIds ?? [];
    expect(noGroup.length).toBeGreaterThanOrEqual(10);
    for (const u of noGroup) expect(grouped.has(u)).toBe(false);
    expect(noGroup.filter((u) => unattributedOf(u).length > 0).length).toBeGreaterThanOrEqual(10);

    const big = cases.groupIdBeyond2to53?.groupIds[0] ?? "0";
    expect(BigInt(big)).toBeGreaterThan(2n ** 53n);
    expect(current.groups.map((g) => g.id)).toContain(big);
    const bigUsers = cases.bigUserIds?.userIds ?? [];
    expect(bigUsers.length).toBeGreaterThan(3);
    expect(bigUsers.some((u) => pointsOf(u).length > 0 && grouped.has(u))).toBe(true);

    for (const g of current.groups) {
      expect(g.members.length).toBeGreaterThanOrEqual(2);
      expect(g.members.length).toBeLessThanOrEqual(8);
    }
    expect(new Set(current.groups.map((g) => g.id.length)).size).toBeGreaterThan(4);
  });

  it("lists group members that reconcile with group_summary and the re-read Members files", () => {
    const t = a.truth;
    const gm = t.groupMembers;
    expect(new Set(gm.map((r) => r.period))).toEqual(new Set(OPTS.months));
    const key = (r: TruthRow): [string, bigint, bigint] => [
      r.period ?? "",
      BigInt(r.group_id ?? "0"),
      BigInt(r.user_id ?? "0"),
    ];
    for (let i = 1; i < gm.length; i++) {
      const [p0, g0, u0] = key(gm[i - 1] as TruthRow);
      const [p1, g1, u1] = key(gm[i] as TruthRow);
      expect(p0 < p1 || (p0 === p1 && (g0 < g1 || (g0 === g1 && u0 < u1)))).toBe(true);
    }
    for (const r of gm) {
      expect(Object.keys(r)).toEqual([...GROUP_MEMBERS_COLUMNS]);
      expect(["yes", "no"]).toContain(r.in_members_total);
    }

    // Per group and period: the counted members are members_total and carry the members_* sums; the
    // listed members' figures add up to the group's.
    for (const s of t.groupSummary) {
      const rows = gm.filter((r) => r.period === s.period && r.group_id === s.group_id);
      const counted = rows.filter((r) => r.in_members_total === "yes");
      const at = `${s.period} ${s.group_id}`;
      expect(String(counted.length), at).toBe(s.members_total);
      expect(rows.length, at).toBeGreaterThanOrEqual(Number(s.members_active_in_period));
      expect(sumField(rows, "points_awarded"), at).toBe(milli(s.points_awarded));
      expect(sumField(rows, "points_redeemed"), at).toBe(milli(s.points_redeemed));
      expect(sumField(counted, "points_balance"), at).toBe(milli(s.members_points_balance));
      expect(sumField(counted, "lifetime_purchases"), at).toBe(milli(s.members_lifetime_purchases));
    }

    // Role from the membership the syncs saw; tier and balances from the newest Members row in the files.
    const roleOf = new Map<string, string>();
    for (const st of [initial, current])
      for (const g of st.groups) for (const m of g.members) roleOf.set(`${g.id}|${m.userId}`, m.role);
    const newestMember = new Map<string, { v: string; row: Record<string, string> }>();
    for (const c of csvs.filter((x) => x.template === "members")) {
      for (const row of c.rows) {
        if (!isId(row.dim_event_user_id) || milli(row.loyalty_points) === null) continue;
        const v = `${row.auto_update_time?.padStart(12, "0")}|${c.delivery}`;
        const old = newestMember.get(row.dim_event_user_id as string);
        if (!old || v >= old.v) newestMember.set(row.dim_event_user_id as string, { v, row });
      }
    }
    for (const r of gm) {
      const m = newestMember.get(r.user_id ?? "")?.row;
      expect(m, r.user_id).toBeDefined();
      expect(r.role).toBe(roleOf.get(`${r.group_id}|${r.user_id}`));
      expect(r.tier).toBe(m?.["User.slab_name"]);
      expect(milli(r.points_balance)).toBe(milli(m?.loyalty_points));
      expect(milli(r.lifetime_purchases)).toBe(milli(m?.lifetime_purchased));
    }
    expect(gm.some((r) => (r.points_balance ?? "").startsWith("-"))).toBe(true);

    // The cases: a member who moved mid-month is listed in both groups, counted in the new one.
    const cases = a.manifest.cases;
    const listed = (u: string) =>
      gm.filter((r) => r.user_id === u).map((r) => `${r.period} ${r.group_id} ${r.in_members_total}`);
    const dl = cases.defaultGroupJoinedLater;
    const [old, moved] = dl?.groupIds ?? [];
    expect(listed(dl?.userIds[0] ?? "")).toEqual([
      `2026-10 ${old} no`,
      `2026-10 ${moved} yes`,
      `2026-11 ${moved} yes`,
    ]);
    const nd = cases.noDefaultSmallestNumericId;
    expect(listed(nd?.userIds[0] ?? "")).toEqual(OPTS.months.map((p) => `${p} ${nd?.groupIds[0]} yes`));
    const late = cases.rowsBeforeJoinedOn;
    expect(listed(late?.userIds[0] ?? "")).toEqual([`2026-11 ${late?.groupIds[0]} yes`]);
    for (const name of ["firstSeenExited", "joinedAfterPeriods", "noGroup"] as const)
      for (const u of cases[name]?.userIds ?? []) expect(listed(u), `${name} ${u}`).toEqual([]);
    const deleted = cases.deletedGroup?.groupIds[0];
    expect(gm.filter((r) => r.group_id === deleted)).toEqual([]);
    const quiet = cases.noActivityInPeriod?.groupIds[0];
    const quietNov = gm.filter((r) => r.group_id === quiet && r.period === "2026-11");
    expect(quietNov.length).toBeGreaterThan(0);
    for (const r of quietNov)
      expect([r.points_awarded, r.points_redeemed, r.in_members_total]).toEqual(["0", "0", "yes"]);
  });

  it("re-sends changed and duplicate rows in the incremental files, and other realistic mess", () => {
    const pointsFiles = csvs.filter((c) => c.template === "points");
    const inc = pointsFiles[pointsFiles.length - 1] as Csv;
    const earlier = new Map(
      pointsFiles.slice(0, -1).flatMap((c) => c.rows.map((r) => [r.event_id ?? "", r])),
    );
    let changed = 0;
    let duplicates = 0;
    const kinds = new Set<string>();
    for (const r of inc.rows) {
      const old = earlier.get(r.event_id ?? "");
      if (!old) continue;
      const same = POINTS_HEADER.every((h) => r[h] === old[h]);
      if (same) duplicates++;
      else {
        changed++;
        expect(Number(r.auto_update_time)).toBeGreaterThan(Number(old.auto_update_time));
        expect(
          `${r.dim_latest_updated_date_id}${r.dim_latest_updated_time_id}` >
            `${old.dim_latest_updated_date_id}${old.dim_latest_updated_time_id}`,
        ).toBe(true);
        if (milli(r.allocated_points) !== milli(old.allocated_points)) kinds.add("allocated");
        if (milli(r.deducted_points) !== milli(old.deducted_points)) kinds.add("deducted");
        if (r.dim_deduction_type_id?.toLowerCase() !== old.dim_deduction_type_id?.toLowerCase())
          kinds.add("type");
      }
    }
    const total = earlier.size;
    expect(changed).toBeGreaterThan(total * 0.015);
    expect(changed).toBeLessThan(total * 0.05);
    expect(duplicates).toBeGreaterThanOrEqual(3);
    expect([...kinds].sort()).toEqual(["allocated", "deducted", "type"]);

    const all = pointsFiles.flatMap((c) => c.rows);
    const types = new Set(all.map((r) => r.dim_deduction_type_id ?? ""));
    for (const t of [
      "redeemed",
      "REDEEMED",
      "expired",
      "return",
      "return_historical",
      "redemption_reversal",
    ]) {
      expect(types, t).toContain(t);
    }
    expect([...types].some((t) => /^[A-Z][a-z]/.test(t))).toBe(true);
    expect(new Set(all.map((r) => r.event_name))).toEqual(
      new Set(["TransactionAdd", "GroupTransactionAdd", ""]),
    );
    const amounts = all.map((r) => r.allocated_points ?? "");
    expect(amounts.some((v) => /^\d+$/.test(v) && v !== "0")).toBe(true);
    expect(amounts.some((v) => /\.\d{3}$/.test(v))).toBe(true);
    expect(amounts.some((v) => /\.\d?[1-9]$/.test(v))).toBe(true);
    const bills = new Set(all.map((r) => r.bill_id));
    for (const s of ["-1", "Not Captured", "", "NULL"]) expect(bills).toContain(s);
    for (const r of all.filter((x) => x.dim_points_event_type_id === "awarded")) {
      expect(r.dim_deduction_type_id).toBe("");
      expect(milli(r.deducted_points)).toBe(0n);
    }

    const summary = csvs.filter((c) => c.template === "points_redemption_summary");
    const notes = summary.flatMap((c) => c.rows.map((r) => r.notes ?? r.Notes ?? ""));
    expect(notes.some((n) => n.includes(","))).toBe(true);
    expect(notes.some((n) => n.includes('"'))).toBe(true);
    expect(notes.filter((n) => n.includes("\n"))).toHaveLength(1);
    const rtypes = new Set(
      summary.flatMap((c) => c.rows.map((r) => r.dim_redemption_type_id ?? r["Redemption Type"])),
    );
    for (const t of ["REDEMPTION", "GROUP_REDEMPTION", "REVERSAL"]) expect(rtypes).toContain(t);
    const groupRows = summary[0]?.rows.filter(
      (r) => r.dim_redemption_type_id?.toLowerCase() === "group_redemption",
    );
    expect(groupRows?.length).toBeGreaterThan(0);
    for (const r of groupRows ?? []) expect(r.point_category_id).toBe("-1");
    // Each redemption's Points deduction rows point at it.
    const summaryIds = new Set(summary[0]?.rows.map((r) => r.event_id));
    const linked = all.filter((r) => r.dim_deduction_type_id?.toLowerCase() === "redeemed");
    expect(linked.filter((r) => summaryIds.has(r.deduction_summary_id)).length).toBeGreaterThan(50);

    const members = csvs.filter((c) => c.template === "members");
    expect(members[0]?.rows.some((r) => (r.loyalty_points ?? "").startsWith("-"))).toBe(true);
    expect(a.manifest.incremental.membersStale.length).toBeGreaterThan(0);
    expect(members[1]?.raw.endsWith("\n")).toBe(false);
  });

  it("re-sends rows dated in another month, both ways, and the truth counts each in its new month only", () => {
    const kindOf = new Map(a.manifest.files.map((f) => [f.key, f.kind]));
    const isInc = (c: Csv): boolean => kindOf.get(c.name.split("!")[0] ?? "") === "incremental";
    /** A row under the raw column names, whichever header style the file has. */
    const std = (c: Csv, row: Record<string, string>): Record<string, string> =>
      c.header === SUMMARY_DISPLAY || c.header.join() === SUMMARY_DISPLAY.join()
        ? Object.fromEntries(SUMMARY_RAW.map((h, i) => [h, row[SUMMARY_DISPLAY[i] ?? ""] ?? ""]))
        : row;
    const monthOfId = (d: string): string => `${d.slice(0, 4)}-${d.slice(4, 6)}`;
    const version = (template: string, r: Record<string, string>): string =>
      template === "points"
        ? `${r.dim_latest_updated_date_id}${r.dim_latest_updated_time_id}`
        : (r.auto_update_time ?? "").padStart(12, "0");

    // From the files alone: incremental rows whose event date left the month of the full export's row.
    const found: { template: string; eventId: string; from: string; to: string }[] = [];
    const resent = new Map<string, Record<string, string>>();
    for (const template of ["points", "points_redemption_summary"] as const) {
      const files = csvs.filter((c) => c.template === template);
      const incFiles = files.filter(isInc);
      expect(incFiles, template).toHaveLength(1);
      const earlier = new Map(
        files
          .filter((c) => !isInc(c))
          .flatMap((c) => c.rows.map((r) => std(c, r)))
          .map((r) => [r.event_id ?? "", r]),
      );
      for (const c of incFiles) {
        for (const r of c.rows.map((x) => std(c, x))) {
          const old = earlier.get(r.event_id ?? "");
          if (!old || !validDate(r.dim_event_date_id)) continue;
          resent.set(`${template}|${r.event_id}`, r);
          const from = old.dim_event_date_id ?? "";
          const to = r.dim_event_date_id ?? "";
          if (monthOfId(from) === monthOfId(to)) continue;
          expect(version(template, r) > version(template, old), r.event_id).toBe(true);
          expect(Number(r.auto_update_time)).toBeGreaterThan(Number(old.auto_update_time));
          expect(OPTS.months).toContain(monthOfId(to));
          found.push({ template, eventId: r.event_id ?? "", from, to });
        }
      }
    }
    const key = (m: { template: string; eventId: string; from: string; to: string }): string =>
      [m.template, m.eventId, m.from, m.to].join("|");
    expect(found.map(key).sort()).toEqual(a.manifest.incremental.moved.map(key).sort());
    for (const template of ["points", "points_redemption_summary"]) {
      const mine = found.filter((m) => m.template === template);
      expect(
        mine.some((m) => m.to > m.from),
        `${template} moved later`,
      ).toBe(true);
      expect(
        mine.some((m) => m.to < m.from),
        `${template} moved earlier`,
      ).toBe(true);
    }
    expect(found.filter((m) => m.template === "points").length).toBeGreaterThanOrEqual(5);
    expect(found.filter((m) => m.template === "points_redemption_summary").length).toBeGreaterThanOrEqual(2);
    // A moved redemption moves with its Points rows.
    const pointsFull = csvs.filter((c) => c.template === "points" && !isInc(c)).flatMap((c) => c.rows);
    for (const m of found.filter((x) => x.template === "points_redemption_summary")) {
      const parts = pointsFull.filter((r) => r.deduction_summary_id === m.eventId);
      expect(parts.length, m.eventId).toBeGreaterThan(0);
      for (const p of parts) expect(resent.get(`points|${p.event_id}`)?.dim_event_date_id).toBe(m.to);
    }

    // The truth against the same sample without the moved versions: every additive figure shifts by
    // exactly the moved rows, out of their old month and group into their new ones.
    const deliveryOf = (template: string) =>
      a.manifest.files.find((f) => f.template === template && f.kind === "incremental")?.deliveryOrder;
    const incPoints = deliveryOf("points");
    const incSummary = deliveryOf("points_redemption_summary");
    const movedIds = new Set(found.map((m) => `${m.template}|${m.eventId}`));
    const base = computeTruth({
      ...a.input,
      points: a.input.points.filter(
        (p) => !(p.delivery === incPoints && movedIds.has(`points|${p.eventId}`)),
      ),
      summaries: a.input.summaries.filter(
        (s) => !(s.delivery === incSummary && movedIds.has(`points_redemption_summary|${s.eventId}`)),
      ),
    });
    const byUser = observe(a.input.syncs);
    const delta = new Map<string, Map<string, bigint>>();
    const add = (at: string, figure: string, v: bigint): void => {
      const d = delta.get(at) ?? new Map<string, bigint>();
      d.set(figure, (d.get(figure) ?? 0n) + v);
      delta.set(at, d);
    };
    const place = (userId: string, date: string): string => {
      const g = attribute(byUser, userId, date);
      return g === null ? `${monthOfId(date)}|user:${userId}` : `${monthOfId(date)}|${g}`;
    };
    for (const m of found) {
      const versions = (
        m.template === "points"
          ? a.input.points.filter((p) => p.eventId === m.eventId)
          : a.input.summaries.filter((s) => s.eventId === m.eventId)
      ).map((r) => ({ r, inc: r.delivery === (m.template === "points" ? incPoints : incSummary) }));
      expect(versions.map((v) => v.inc).sort()).toEqual([false, true]);
      for (const { r, inc } of versions) {
        const sign = inc ? 1n : -1n;
        const at = place(r.userId, r.date);
        const unattributed = at.includes("|user:");
        add(at, "rows", sign);
        if ("allocated" in r) {
          const t = r.deductionType.toLowerCase();
          add(at, "points_awarded", sign * r.allocated);
          if (r.eventName === "GroupTransactionAdd") add(at, "group_transaction_points", sign * r.allocated);
          if (t === "redeemed") add(at, "points_redeemed", sign * r.deducted);
          if (t === "expired") add(at, "points_expired", sign * r.deducted);
          if (t === "return" || t === "return_historical") add(at, "points_returned", sign * r.deducted);
        } else if (!unattributed) {
          const t = r.redemptionType.toLowerCase();
          const kind = t === "group_redemption" ? "group_wallet" : t === "redemption" ? "member" : "";
          expect(kind, r.eventId).not.toBe("");
          add(at, `${kind}_redemptions`, sign);
          add(at, `${kind}_points_redeemed`, sign * r.pointsRedeemed);
        }
      }
    }
    const figure = (r: TruthRow | undefined, f: string): bigint =>
      r === undefined
        ? 0n
        : f === "rows" || f.endsWith("_redemptions")
          ? BigInt(r[f] ?? "0") * 1000n
          : (milli(r[f]) ?? 0n);
    const scaled = (f: string, v: bigint): bigint =>
      f === "rows" || f.endsWith("_redemptions") ? v * 1000n : v;
    const changedFigures = new Set<string>();
    const months = new Set<string>();
    const ADDITIVE = [
      "points_awarded",
      "group_transaction_points",
      "points_redeemed",
      "points_expired",
      "points_returned",
      "group_wallet_redemptions",
      "group_wallet_points_redeemed",
      "member_redemptions",
      "member_points_redeemed",
    ];
    for (const [i, r] of a.truth.groupSummary.entries()) {
      const b = base.groupSummary[i];
      expect([b?.period, b?.group_id]).toEqual([r.period, r.group_id]);
      const d = delta.get(`${r.period}|${r.group_id}`);
      for (const f of ADDITIVE) {
        const got = figure(r, f) - figure(b, f);
        expect(got, `${r.period} ${r.group_id} ${f}`).toBe(scaled(f, d?.get(f) ?? 0n));
        if (got !== 0n) {
          changedFigures.add(f);
          months.add(r.period ?? "");
        }
      }
      if (r.members_active_in_period !== b?.members_active_in_period)
        changedFigures.add("members_active_in_period");
      expect(r.members_total).toBe(b?.members_total);
    }
    const unattributedOf = (t: Truth) =>
      new Map(t.unattributed.map((u) => [`${u.period}|user:${u.user_id}`, u]));
    const [now, before] = [unattributedOf(a.truth), unattributedOf(base)];
    for (const k of new Set([...now.keys(), ...before.keys()])) {
      const d = delta.get(k);
      for (const f of ["rows", "points_awarded", "points_redeemed"]) {
        const got = figure(now.get(k), f) - figure(before.get(k), f);
        expect(got, `${k} ${f}`).toBe(scaled(f, d?.get(f) ?? 0n));
        if (got !== 0n) changedFigures.add(`unattributed ${f}`);
      }
    }
    for (const f of [
      "points_awarded",
      "points_redeemed",
      "group_wallet_redemptions",
      "member_redemptions",
      "members_active_in_period",
      "unattributed rows",
    ])
      expect(changedFigures, f).toContain(f);
    expect([...months].sort()).toEqual(OPTS.months);
  });

  it("formats decimals exactly and minimally", () => {
    expect(formatThousandths(-12500n)).toBe("-12.5");
    expect(formatThousandths(0n)).toBe("0");
    expect(formatThousandths(1234125n)).toBe("1234.125");
    expect(formatThousandths(-1n)).toBe("-0.001");
    expect(formatThousandths(10n ** 21n)).toBe("1000000000000000000");
  });
});
