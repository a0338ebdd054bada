/**
 * The HTML report in a real browser: Debian's chromium, driven by playwright-core, offline (no network
 * flags, a fresh profile). The page must load nothing but itself, show every group's figures exactly as
 * the CSV has them (empty stays empty), draw the three charts, and a screenshot is saved to
 * .test-output/html-report.png for a human look.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import { GROUP_SUMMARY_COLUMNS, type GroupSummaryRow } from "../../lib/domain/aggregate.ts";
import { renderHtmlReport, sumDecimals } from "../../lib/domain/html-report.ts";

const CHROMIUM = "/usr/bin/chromium";
const OUT = resolve(".test-output");

describe("HTML report in headless Chromium", () => {
  let dir: string;
  let profile: string;
  let browser: BrowserContext;
  let sample: GeneratedSample;
  let rows: GroupSummaryRow[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-html-"));
    profile = await mkdtemp(join(tmpdir(), "glr-chromium-"));
    sample = await buildSample({ outDir: dir, seed: 5, months: ["2026-09", "2026-10"] });
    rows = sample.truth.groupSummary.filter((r) => r.period === "2026-10") as GroupSummaryRow[];
    // One group whose figures the exports cannot supply (empty), and a name that must be escaped.
    const first = rows[0];
    if (!first) throw new Error("no rows");
    rows[0] = { ...first, group_name: `<script>alert("x")</script> & Co`, group_transaction_points: "" };
    // A fresh profile (--user-data-dir) per run: playwright passes it for a persistent context.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  it("shows every figure as the report has it, offline, with its charts", async () => {
    const walletByDay = [
      { date: "2026-10-03", redemptions: 2, points: "150.5" },
      { date: "2026-10-17", redemptions: 1, points: "40" },
    ];
    const html = renderHtmlReport({
      period: "2026-10",
      runId: "20261102T000000Z-abcdef",
      generatedAt: "2026-11-02T00:00:00.000Z",
      membershipSyncedAt: "2026-11-01T06:00:00.000Z",
      groupSummary: rows,
      walletByDay,
      history: [
        { period: "2026-08", redemptions: "", points: "" },
        { period: "2026-09", redemptions: "12", points: "900.25" },
        { period: "2026-10", redemptions: "3", points: "190.5" },
      ],
    });
    const file = join(dir, "report.html");
    await writeFile(file, html);
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1400, height: 1000 });
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    const dialogs: string[] = [];
    page.on("dialog", async (d) => {
      dialogs.push(d.message());
      await d.dismiss();
    });
    await page.goto(pathToFileURL(file).href, { waitUntil: "load" });

    expect(requests).toEqual([pathToFileURL(file).href]);
    expect(dialogs).toEqual([]);
    expect(await page.textContent("#period")).toBe("2026-10");

    // The table: one row per group, each cell's text = the report's value.
    const shown = await page.$$eval("#group-summary tbody tr", (trs) =>
      trs.map((tr) =>
        Object.fromEntries(
          [...tr.querySelectorAll("td")].map((td) => [
            td.getAttribute("data-col") ?? "",
            td.textContent ?? "",
          ]),
        ),
      ),
    );
    expect(shown).toEqual(rows.map((r) => Object.fromEntries(GROUP_SUMMARY_COLUMNS.map((c) => [c, r[c]]))));
    // Empty is shown as a dash (CSS), never as 0.
    const dash = await page.$eval(
      `#group-summary tr[data-group="${rows[0]?.group_id}"] td[data-col=group_transaction_points]`,
      (td) => td.ownerDocument.defaultView?.getComputedStyle(td, "::after").content,
    );
    expect(dash).toBe('"–"');

    // Summary figures: exact sums of the table's columns.
    const kpi = (id: string) => page.textContent(`[data-kpi=${id}] .v`);
    expect(await kpi("groups")).toBe(String(rows.length));
    expect(await kpi("points_awarded")).toBe(sumDecimals(rows.map((r) => r.points_awarded)));
    expect(await kpi("group_wallet_points_redeemed")).toBe(
      sumDecimals(rows.map((r) => r.group_wallet_points_redeemed)),
    );

    // Charts: points by group (top 15, largest first), wallet points per day, tier mix.
    const bars = await page.$$eval("#chart-points g", (gs) => gs.map((g) => g.getAttribute("data-group")));
    const top = [...rows]
      .sort((a, b) => Number(b.points_awarded) - Number(a.points_awarded))
      .slice(0, 15)
      .map((r) => r.group_id);
    expect(bars).toEqual(top);
    const days = await page.$$eval("#chart-wallet rect", (rs) =>
      rs.map((r) => [r.getAttribute("data-date"), r.getAttribute("data-points")]),
    );
    expect(days).toEqual(walletByDay.map((d) => [d.date, d.points]));
    const months = await page.$$eval("#chart-wallet-months g", (gs) =>
      gs.map((g) => [
        g.getAttribute("data-period"),
        g.getAttribute("data-redemptions"),
        g.getAttribute("data-points"),
      ]),
    );
    // A month whose exports could not supply the figure has no bar (not a 0 bar).
    expect(months).toEqual([
      ["2026-09", "12", "900.25"],
      ["2026-10", "3", "190.5"],
    ]);
    const tiers = await page.$$eval(".legend li", (lis) =>
      lis.map((li) => [li.getAttribute("data-tier"), Number(li.getAttribute("data-groups"))]),
    );
    const want = new Map<string, number>();
    for (const r of rows) want.set(r.group_tier || "(none)", (want.get(r.group_tier || "(none)") ?? 0) + 1);
    expect(Object.fromEntries(tiers)).toEqual(Object.fromEntries(want));
    // The escaped name is text, not markup.
    expect(await page.$$eval("#group-summary script", (s) => s.length)).toBe(0);

    await mkdir(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, "html-report.png"), fullPage: false });
    await page.close();
  });

  it("says when the table is cut and the CSV has every group", async () => {
    const html = renderHtmlReport({
      period: "2026-10",
      runId: "r",
      generatedAt: "t",
      membershipSyncedAt: "",
      groupSummary: rows,
      walletByDay: [],
      maxTableRows: 3,
    });
    const file = join(dir, "cut.html");
    await writeFile(file, html);
    const page = await browser.newPage();
    await page.goto(pathToFileURL(file).href);
    expect(await page.$$eval("#group-summary tbody tr", (t) => t.length)).toBe(3);
    expect(await page.textContent("#truncated")).toBe(
      `Showing 3 of ${rows.length} groups; group_summary.csv has them all.`,
    );
    expect(await page.$$("#chart-wallet")).toHaveLength(0);
    expect(await page.textContent("body")).toContain("No group-wallet redemptions in this period.");
    await page.close();
  });
});
