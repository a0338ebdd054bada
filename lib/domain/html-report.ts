/**
 * A self-contained HTML report of one period: summary figures, charts (points by group, group-wallet
 * redemptions per day, tier mix) as inline SVG, and the group summary table. No script, no external
 * resource (a Content-Security-Policy forbids them), so it renders offline and from an e-mail attachment.
 * Figures are the report's own strings (exact decimals); an empty figure (not supplied by the exports)
 * stays an empty cell, shown as a dash by CSS, so that the text of a cell is always the CSV value.
 */

import { GROUP_SUMMARY_COLUMNS, type GroupSummaryRow, type WalletDay } from "./aggregate.ts";
import { compareGroupIds } from "./attribution.ts";

export interface HtmlReportInput {
  period: string;
  runId: string;
  generatedAt: string;
  membershipSyncedAt: string;
  groupSummary: readonly GroupSummaryRow[];
  walletByDay: readonly WalletDay[];
  /** Group-wallet totals of this period and up to 11 before it (oldest first), from published manifests. */
  history?: readonly MonthTotals[];
  /** Table rows shown at most (the CSV has them all). Default 2,000. */
  maxTableRows?: number;
  /** Groups in the points chart. Default 15. */
  topGroups?: number;
}

const esc = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

/** Exact decimal string to a number for drawing only (bar lengths); never used for a shown figure. */
const num = (s: string) => (s === "" ? 0 : Number(s));

/** Sum of exact decimal strings (up to 3 decimals), as an exact decimal string. */
export function sumDecimals(values: readonly string[]): string {
  let t = 0n;
  for (const v of values) {
    if (v === "") continue;
    const neg = v.startsWith("-");
    const [i = "0", f = ""] = (neg ? v.slice(1) : v).split(".");
    const x = BigInt(i) * 1000n + BigInt(`${f}000`.slice(0, 3));
    t += neg ? -x : x;
  }
  const neg = t < 0n;
  const a = neg ? -t : t;
  const frac = (a % 1000n).toString().padStart(3, "0").replace(/0+$/, "");
  return `${neg ? "-" : ""}${a / 1000n}${frac ? `.${frac}` : ""}`;
}

export interface MonthTotals {
  period: string;
  /** Exact decimal strings; empty when the exports could not supply them. */
  redemptions: string;
  points: string;
}

function walletByMonth(months: readonly MonthTotals[]): string {
  const shown = months.filter((m) => m.points !== "");
  if (shown.length === 0) return `<p class="none">No group-wallet figures yet.</p>`;
  const max = Math.max(1, ...shown.map((m) => num(m.points)));
  const w = 640;
  const h = 200;
  const left = 40;
  const step = (w - left) / 12;
  const bars = shown
    .map((m, i) => {
      const x = left + i * step;
      const bh = (num(m.points) / max) * (h - 50);
      return `<g data-period="${esc(m.period)}" data-points="${esc(m.points)}" data-redemptions="${esc(m.redemptions)}"><rect x="${(x + 4).toFixed(1)}" y="${(h - 30 - bh).toFixed(1)}" width="${(step - 8).toFixed(1)}" height="${bh.toFixed(1)}" fill="${PALETTE[3]}"><title>${esc(m.period)}: ${esc(m.redemptions)} redemptions, ${esc(m.points)} points</title></rect><text x="${(x + step / 2).toFixed(1)}" y="${h - 16}" text-anchor="middle">${esc(m.period)}</text><text x="${(x + step / 2).toFixed(1)}" y="${(h - 34 - bh).toFixed(1)}" text-anchor="middle" class="v">${esc(m.redemptions)}</text></g>`;
    })
    .join("");
  const axis = `<line x1="${left}" y1="${h - 30}" x2="${w}" y2="${h - 30}" stroke="#999"/><text x="${left + 4}" y="12" text-anchor="start">max ${esc(formatMax(max))}</text>`;
  return `<svg role="img" aria-label="Group-wallet points redeemed by month" viewBox="0 0 ${w} ${h}" width="100%" class="chart" id="chart-wallet-months">${axis}${bars}</svg>`;
}

const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];

function barsByGroup(rows: readonly GroupSummaryRow[], top: number): string {
  const sorted = [...rows]
    .filter((r) => r.points_awarded !== "")
    .sort((a, b) => num(b.points_awarded) - num(a.points_awarded) || compareGroupIds(a.group_id, b.group_id))
    .slice(0, top);
  if (sorted.length === 0) return `<p class="none">No points figures in this period.</p>`;
  const max = Math.max(1, ...sorted.map((r) => num(r.points_awarded)));
  const rowH = 22;
  const labelW = 220;
  const barW = 420;
  const h = sorted.length * rowH + 10;
  const bars = sorted
    .map((r, i) => {
      const w = Math.max(0, (num(r.points_awarded) / max) * barW);
      const y = i * rowH + 5;
      const label = `${r.group_name || r.group_id} (${r.group_id})`;
      return `<g data-group="${esc(r.group_id)}"><text x="${labelW - 6}" y="${y + 14}" text-anchor="end">${esc(label.length > 32 ? `${label.slice(0, 31)}…` : label)}</text><rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${PALETTE[0]}"/><text x="${(labelW + w + 6).toFixed(1)}" y="${y + 14}" class="v">${esc(r.points_awarded)}</text></g>`;
    })
    .join("");
  return `<svg role="img" aria-label="Points awarded by group" viewBox="0 0 ${labelW + barW + 110} ${h}" width="100%" class="chart" id="chart-points">${bars}</svg>`;
}

function walletOverTime(days: readonly WalletDay[], period: string): string {
  if (days.length === 0) return `<p class="none">No group-wallet redemptions in this period.</p>`;
  const [y = 0, m = 1] = period.split("-").map(Number);
  const n = new Date(Date.UTC(y, m, 0)).getUTCDate();
  const byDay = new Map(days.map((d) => [Number(d.date.slice(8, 10)), d]));
  const max = Math.max(1, ...days.map((d) => num(d.points)));
  const w = 640;
  const h = 200;
  const left = 40;
  const step = (w - left) / n;
  const bars: string[] = [];
  for (let d = 1; d <= n; d++) {
    const v = byDay.get(d);
    const x = left + (d - 1) * step;
    if (v) {
      const bh = (num(v.points) / max) * (h - 40);
      bars.push(
        `<rect x="${(x + 1).toFixed(1)}" y="${(h - 20 - bh).toFixed(1)}" width="${(step - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="${PALETTE[1]}" data-date="${esc(v.date)}" data-points="${esc(v.points)}" data-redemptions="${v.redemptions}"><title>${esc(v.date)}: ${v.redemptions} redemptions, ${esc(v.points)} points</title></rect>`,
      );
    }
    if (d === 1 || d % 5 === 0)
      bars.push(`<text x="${(x + step / 2).toFixed(1)}" y="${h - 5}" text-anchor="middle">${d}</text>`);
  }
  const axis = `<line x1="${left}" y1="${h - 20}" x2="${w}" y2="${h - 20}" stroke="#999"/><text x="${left + 4}" y="12" text-anchor="start">max ${esc(formatMax(max))}</text>`;
  return `<svg role="img" aria-label="Group-wallet points redeemed per day" viewBox="0 0 ${w} ${h}" width="100%" class="chart" id="chart-wallet">${axis}${bars.join("")}</svg>`;
}

function formatMax(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/0+$/, "");
}

function tierMix(rows: readonly GroupSummaryRow[]): string {
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.group_tier || "(none)", (counts.get(r.group_tier || "(none)") ?? 0) + 1);
  const tiers = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const total = rows.length;
  if (total === 0) return `<p class="none">No groups.</p>`;
  const w = 640;
  let x = 0;
  const segs: string[] = [];
  const legend: string[] = [];
  tiers.forEach(([tier, c], i) => {
    const sw = (c / total) * w;
    const color = PALETTE[i % PALETTE.length] ?? "#999";
    segs.push(
      `<rect x="${x.toFixed(1)}" y="0" width="${sw.toFixed(1)}" height="28" fill="${color}"><title>${esc(tier)}: ${c}</title></rect>`,
    );
    legend.push(
      `<li data-tier="${esc(tier)}" data-groups="${c}"><span class="sw" style="background:${color}"></span>${esc(tier)}: <b>${c}</b> (${((c / total) * 100).toFixed(1)}%)</li>`,
    );
    x += sw;
  });
  return `<svg role="img" aria-label="Tier mix of groups" viewBox="0 0 ${w} 28" width="100%" class="chart" id="chart-tiers">${segs.join("")}</svg><ul class="legend">${legend.join("")}</ul>`;
}

export function renderHtmlReport(input: HtmlReportInput): string {
  const rows = input.groupSummary;
  const maxRows = input.maxTableRows ?? 2000;
  const shown = rows.slice(0, maxRows);
  const total = (col: (typeof GROUP_SUMMARY_COLUMNS)[number]) => {
    const vals = rows.map((r) => r[col]);
    return vals.length > 0 && vals.every((v) => v === "") ? "" : sumDecimals(vals);
  };
  const kpis: [string, string, string][] = [
    ["groups", "Groups", String(rows.length)],
    ["members_total", "Members", total("members_total")],
    ["members_active_in_period", "Active members", total("members_active_in_period")],
    ["points_awarded", "Points awarded", total("points_awarded")],
    ["points_redeemed", "Points redeemed", total("points_redeemed")],
    ["group_wallet_redemptions", "Group-wallet redemptions", total("group_wallet_redemptions")],
    ["group_wallet_points_redeemed", "Group-wallet points", total("group_wallet_points_redeemed")],
  ];
  const head = GROUP_SUMMARY_COLUMNS.map((c) => `<th>${esc(c)}</th>`).join("");
  const body = shown
    .map(
      (r) =>
        `<tr data-group="${esc(r.group_id)}">${GROUP_SUMMARY_COLUMNS.map((c) => `<td data-col="${c}">${esc(r[c])}</td>`).join("")}</tr>`,
    )
    .join("\n");
  const note =
    rows.length > shown.length
      ? `<p class="note" id="truncated">Showing ${shown.length} of ${rows.length} groups; group_summary.csv has them all.</p>`
      : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Group loyalty report ${esc(input.period)}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#111;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#555;font-size:12px}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.kpi{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px}
.kpi .l{font-size:12px;color:#555}.kpi .v{font-size:20px;font-weight:600}
.kpi .v:empty::after,td:empty::after{content:"–";color:#999}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
.chart{max-width:760px;font-size:11px}.chart .v{fill:#333}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:12px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ddd;padding:3px 6px;white-space:nowrap}
th{background:#f4f4f5;position:sticky;top:0}td{text-align:right}
td[data-col=group_id],td[data-col=group_external_id],td[data-col=group_name],td[data-col=group_status],td[data-col=group_tier],td[data-col=period]{text-align:left}
.wrap{overflow:auto;max-height:80vh}.none,.note{color:#555}
@media print{.wrap{max-height:none;overflow:visible}}
</style>
</head>
<body>
<h1>Group loyalty report <span id="period">${esc(input.period)}</span></h1>
<p class="meta">Run <span id="run-id">${esc(input.runId)}</span>, generated ${esc(input.generatedAt)}; membership synced ${esc(input.membershipSyncedAt || "never")}. A dash means the delivered exports cannot supply the figure (not zero).</p>
<section class="kpis">${kpis.map(([id, l, v]) => `<div class="kpi" data-kpi="${id}"><div class="l">${esc(l)}</div><div class="v">${esc(v)}</div></div>`).join("")}</section>
<section class="charts">
<div><h2>Points awarded by group (top ${Math.min(input.topGroups ?? 15, rows.length)})</h2>${barsByGroup(rows, input.topGroups ?? 15)}</div>
<div><h2>Group-wallet points redeemed per day</h2>${walletOverTime(input.walletByDay, input.period)}</div>
<div><h2>Group-wallet redemptions by month (points; count above each bar)</h2>${walletByMonth(input.history ?? [])}</div>
<div><h2>Tier mix (groups per tier)</h2>${tierMix(rows)}</div>
</section>
<h2>Group summary</h2>
${note}
<div class="wrap"><table id="group-summary"><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table></div>
</body>
</html>
`;
}
