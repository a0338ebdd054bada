/**
 * Writes a realistic sample of Insights+ exports (Points, Points Redemption Summary, Members), the group
 * membership two syncs see, and the true report figures computed independently from the generated rows.
 * Deterministic for a given seed, months and now.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  MEMBERS_COLUMNS,
  MEMBERS_COLUMNS_B,
  type MembersColumn,
  ordered,
  POINTS_COLUMNS,
  POINTS_COLUMNS_B,
  POINTS_COLUMNS_C,
  type PointsColumn,
  pointsFields,
  SUMMARY_COLUMNS,
  SUMMARY_DISPLAY_COLUMNS,
  summaryFields,
} from "./columns.ts";
import { type ChunkTarget, CsvSink, fileTarget, ZipTarget } from "./csv-out.ts";
import {
  DAY_MS,
  dateId,
  fileStamp,
  HOUR_MS,
  isoDate,
  monthEndMs,
  monthsBefore,
  parseMonth,
  timeId,
} from "./dates.ts";
import {
  generateMonth,
  type IdCounters,
  type MonthEvents,
  type PointsRow,
  type SummaryRow,
  spareAward,
  spareSummary,
} from "./events.ts";
import {
  type BadRecord,
  badMember,
  badPoints,
  badSummary,
  type ChangeKind,
  changeRow,
  type MembersBadKind,
  type PointsBadKind,
  type SummaryBadKind,
} from "./incremental.ts";
import { type MemberRow, memberFields, memberRow } from "./members.ts";
import { planMoves } from "./moves.ts";
import { Rng } from "./rng.ts";
import { computeTruth } from "./truth.ts";
import type {
  BadRow,
  IncrementalFacts,
  ManifestFile,
  SampleManifest,
  Template,
  Truth,
  TruthInput,
} from "./types.ts";
import { buildWorld, type SampleUser, type World } from "./world.ts";

export interface GenerateOptions {
  outDir: string;
  seed?: number;
  /** "YYYY-MM"; default: the two full calendar months before `now`. */
  months?: string[];
  /** When the syncs happen; default: the clock, or 2 days after the last month when months are given. */
  now?: Date;
  groups?: number;
  /** Rows multiplier (users and groups stay the same). */
  scale?: number;
}

export interface GeneratedSample {
  manifest: SampleManifest;
  truth: Truth;
  input: TruthInput;
  world: World;
}

interface Resolved {
  outDir: string;
  seed: number;
  months: string[];
  now: Date;
  groups: number;
  scale: number;
}

function resolve(opts: GenerateOptions): Resolved {
  let months: string[];
  let now: Date;
  if (opts.months && opts.months.length > 0) {
    months = [...new Set(opts.months)].sort();
    for (const m of months) parseMonth(m);
    now = opts.now ?? new Date(monthEndMs(months[months.length - 1] as string) + 2 * DAY_MS + 6 * HOUR_MS);
  } else {
    now = opts.now ?? new Date();
    months = monthsBefore(now, 2);
  }
  const last = months[months.length - 1] as string;
  if (now.getTime() < monthEndMs(last))
    throw new Error(`now (${now.toISOString()}) must be after the last month ${last}`);
  const scale = opts.scale ?? 1;
  if (!(scale > 0)) throw new Error("scale must be > 0");
  return { outDir: opts.outDir, seed: opts.seed ?? 1, months, now, groups: opts.groups ?? 20, scale };
}

/** Data records with bad ones inserted at random positions; reports each bad record's place. */
async function writeRecords(
  rng: Rng,
  sink: CsvSink,
  good: Iterable<string[]>,
  goodCount: number,
  bad: BadRecord[],
  onBad: (record: number, line: number, reason: string) => void,
): Promise<void> {
  const at = new Map<number, BadRecord[]>();
  for (const b of bad) {
    const pos = rng.int(0, goodCount);
    at.set(pos, [...(at.get(pos) ?? []), b]);
  }
  const writeBad = async (pos: number): Promise<void> => {
    for (const b of at.get(pos) ?? []) onBad(sink.records + 1, await sink.record(b.fields), b.reason);
  };
  let i = 0;
  for (const fields of good) {
    await writeBad(i);
    await sink.record(fields);
    i++;
  }
  await writeBad(i);
  for (const pos of at.keys()) if (pos > i) throw new Error("bad row position beyond the file");
}

function* mapRows<T>(rows: readonly T[], f: (r: T) => string[]): Generator<string[]> {
  for (const r of rows) yield f(r);
}

class SampleWriter {
  readonly files: ManifestFile[] = [];
  readonly badRows: BadRow[] = [];
  readonly input: TruthInput;

  constructor(
    readonly rng: Rng,
    readonly r: Resolved,
    readonly world: World,
  ) {
    const syncDate = isoDate(r.now.getTime());
    this.input = {
      months: r.months,
      now: r.now,
      syncs: [
        { date: syncDate, state: world.initial },
        { date: syncDate, state: world.current },
      ],
      points: [],
      summaries: [],
      members: [],
      files: [],
      cases: world.cases,
    };
  }

  /** One CSV (or one zip entry): header, records with bad rows, counts for the ledger truth. */
  async csv(opts: {
    target: ChunkTarget;
    file: string;
    template: Template;
    eol: "\n" | "\r\n";
    bom: boolean;
    header: readonly string[];
    good: Iterable<string[]>;
    goodCount: number;
    bad: BadRecord[];
    trailingBlank?: boolean;
    noFinalEol?: boolean;
  }): Promise<number> {
    const sink = new CsvSink(opts.target, opts.eol, opts.bom);
    await sink.header(opts.header);
    await writeRecords(this.rng, sink, opts.good, opts.goodCount, opts.bad, (record, line, reason) =>
      this.badRows.push({ file: opts.file, record, line, reason }),
    );
    if (opts.trailingBlank) sink.blankLine();
    await sink.end(opts.noFinalEol === true);
    this.input.files.push({
      file: opts.file,
      template: opts.template,
      rowsRead: sink.records,
      rowsAccepted: sink.records - opts.bad.length,
      rowsRejected: opts.bad.length,
    });
    return sink.records;
  }

  path(key: string): string {
    return join(this.r.outDir, key);
  }

  acceptPoints(rows: readonly PointsRow[], delivery: number): void {
    for (const p of rows) {
      this.input.points.push({
        eventId: p.eventId,
        userId: p.userId,
        date: dateId(p.ms),
        allocated: p.allocated,
        deducted: p.deducted,
        deductionType: p.deductionType,
        eventName: p.eventName,
        updated: dateId(p.updatedMs) + timeId(p.updatedMs),
        delivery,
      });
    }
  }

  acceptSummaries(rows: readonly SummaryRow[], delivery: number): void {
    for (const s of rows) {
      this.input.summaries.push({
        eventId: s.eventId,
        userId: s.userId,
        date: dateId(s.ms),
        pointsRedeemed: s.pointsRedeemed,
        redemptionType: s.type,
        autoUpdateTime: s.autoUpdateS,
        delivery,
      });
    }
  }

  acceptMembers(rows: readonly MemberRow[], delivery: number): void {
    for (const m of rows) {
      this.input.members.push({
        userId: m.user.id,
        loyaltyPoints: m.loyaltyPoints,
        lifetimePoints: m.lifetimePoints,
        lifetimePurchased: m.lifetimePurchased,
        tier: m.user.slabName,
        autoUpdateTime: m.autoUpdateS,
        delivery,
      });
    }
  }
}

export async function generateSample(opts: GenerateOptions): Promise<SampleManifest> {
  return (await buildSample(opts)).manifest;
}

/** generateSample, also handing back the truth, its input and the world (for tests). */
export async function buildSample(opts: GenerateOptions): Promise<GeneratedSample> {
  const r = resolve(opts);
  const rng = new Rng(r.seed);
  const world = buildWorld(rng, { months: r.months, now: r.now, groups: r.groups });
  const w = new SampleWriter(rng, r, world);
  const ids: IdCounters = { points: 4_100_000_000n + BigInt(rng.int(0, 999_999)), summary: 610_000_000n };
  const lastEnd = monthEndMs(r.months[r.months.length - 1] as string);
  // Delivery times: each month's Points file early on the 1st of the next month, then the summary zip and
  // the Members snapshot; a day later the incremental Points, Members and summary files.
  const zipAt = lastEnd + 2.5 * HOUR_MS;
  const membersAt = lastEnd + 3 * HOUR_MS;
  const pointsIncAt = lastEnd + DAY_MS + 2 * HOUR_MS;
  const membersIncAt = lastEnd + DAY_MS + 3 * HOUR_MS;
  const summaryIncAt = lastEnd + DAY_MS + 4 * HOUR_MS;
  const nMonths = r.months.length;
  const order = {
    zip: nMonths,
    members: nMonths + 1,
    pointsInc: nMonths + 2,
    membersInc: nMonths + 3,
    summaryInc: nMonths + 4,
  };

  // ---- Points, one file per month
  const changed: PointsRow[] = [];
  const changeKinds: Record<ChangeKind, number> = {
    allocated: 0,
    deducted: 0,
    deductionType: 0,
    eventName: 0,
  };
  const duplicated: PointsRow[] = [];
  const summariesByMonth: SummaryRow[][] = [];
  const monthly: MonthEvents[] = [];
  const monthBad: PointsBadKind[][] = [["allocated", "date", "eventId"], ["user", "allocated"], ["date"]];
  for (const [i, month] of r.months.entries()) {
    const ev = generateMonth(rng, world, month, r.scale, ids);
    summariesByMonth.push(ev.summaries);
    monthly.push(ev);
    for (const p of ev.points) {
      if (rng.chance(0.03)) {
        const c = changeRow(rng, p, lastEnd + 2 * HOUR_MS, pointsIncAt);
        changed.push(c.row);
        for (const k of c.kinds) changeKinds[k]++;
      } else if (rng.chance(0.002) || (i === nMonths - 1 && duplicated.length < 3 && rng.chance(0.05))) {
        duplicated.push(p);
      }
    }
    const at = monthEndMs(month) + 2 * HOUR_MS;
    const plain = i === 0;
    const key = `exports/points/GroupLoyalty_Points_${fileStamp(at)}${plain ? ".csv" : ""}`;
    const columns: readonly PointsColumn[] = plain ? POINTS_COLUMNS : POINTS_COLUMNS_B;
    const bad = (monthBad[i % 2] ?? []).map((k) => badPoints(spareAward(rng, world, month, ids), k, columns));
    const rows = await w.csv({
      target: await fileTarget(w.path(key), !plain),
      file: key,
      template: "points",
      eol: plain ? "\n" : "\r\n",
      bom: !plain,
      header: columns,
      good: mapRows(ev.points, (p) => ordered(pointsFields(p), columns)),
      goodCount: ev.points.length,
      bad,
      trailingBlank: plain,
    });
    w.acceptPoints(ev.points, i);
    w.files.push({
      key,
      template: "points",
      deliveryOrder: i,
      deliveredAt: new Date(at).toISOString(),
      packaging: plain ? "csv" : "gzip",
      kind: "full",
      rows,
      bom: !plain,
      lineEnd: plain ? "LF" : "CRLF",
      headerStyle: "raw",
    });
  }

  // ---- Points Redemption Summary: one zip, one CSV per month (raw names, then display names)
  const firstSummaries = summariesByMonth[0] ?? [];
  const noteRow = firstSummaries[Math.min(3, firstSummaries.length - 1)];
  if (noteRow) noteRow.notes = 'Collected at desk 3\nsigned "J. Doe", ok';

  // ---- Re-sends dated in another month (own Rng: the rest of the sample keeps its bytes)
  const moveRng = new Rng((r.seed ^ 0x6d6f7665) >>> 0);
  const moves = planMoves(
    moveRng,
    world,
    r.months,
    monthly,
    new Set([...changed, ...duplicated].map((p) => p.eventId)),
    {
      points: { fromMs: lastEnd + 2 * HOUR_MS, toMs: pointsIncAt },
      summaries: { fromMs: zipAt, toMs: summaryIncAt },
    },
  );
  const zipKey = `exports/points redemption summary/GroupLoyalty_Points Redemption Summary_${zipAt}.zip`;
  const zip = await ZipTarget.open(w.path(zipKey), zipAt);
  const entries: NonNullable<ManifestFile["entries"]> = [];
  const summaryBad: SummaryBadKind[][] = [["points"], ["user", "date"]];
  for (const [i, month] of r.months.entries()) {
    const rows = summariesByMonth[i] ?? [];
    const display = i % 2 === 1;
    const name = `GroupLoyalty_Points Redemption Summary_${month}.csv`;
    const bad = (summaryBad[i % 2] ?? []).map((k) =>
      badSummary(spareSummary(rng, world, month, ids), k, SUMMARY_COLUMNS),
    );
    const n = await w.csv({
      target: zip.entry(name),
      file: `${zipKey}!${name}`,
      template: "points_redemption_summary",
      eol: display ? "\r\n" : "\n",
      bom: false,
      header: display ? SUMMARY_DISPLAY_COLUMNS : SUMMARY_COLUMNS,
      good: mapRows(rows, (s) => ordered(summaryFields(s), SUMMARY_COLUMNS)),
      goodCount: rows.length,
      bad,
    });
    w.acceptSummaries(rows, order.zip);
    entries.push({
      name,
      rows: n,
      headerStyle: display ? "display" : "raw",
      lineEnd: display ? "CRLF" : "LF",
    });
  }
  await zip.end();
  w.files.push({
    key: zipKey,
    template: "points_redemption_summary",
    deliveryOrder: order.zip,
    deliveredAt: new Date(zipAt).toISOString(),
    packaging: "zip",
    kind: "full",
    rows: entries.reduce((a, e) => a + e.rows, 0),
    bom: false,
    lineEnd: "LF",
    headerStyle: "raw",
    entries,
  });

  // ---- Members: full snapshot, then ~10% changed (plus a stale re-send that must lose)
  const firstStart = Date.parse(`${r.months[0]}-01T00:00:00Z`) / 1000;
  const snapshot = rng
    .shuffle(world.users)
    .map((u) => memberRow(rng, u, rng.int(firstStart, Math.floor((lastEnd + 2 * HOUR_MS) / 1000))));
  const fakeUser = (): SampleUser => ({ ...(world.users[0] as SampleUser), id: `77${rng.digits(8)}` });
  const membersKey = `exports/members/GroupLoyalty_Members_${fileStamp(membersAt)}.csv`;
  const badM = (kinds: MembersBadKind[], cols: readonly MembersColumn[]) =>
    kinds.map((k) => badMember(memberRow(rng, fakeUser(), Math.floor(membersAt / 1000) - 60), k, cols));
  const membersRows = await w.csv({
    target: await fileTarget(w.path(membersKey), false),
    file: membersKey,
    template: "members",
    eol: "\n",
    bom: false,
    header: MEMBERS_COLUMNS,
    good: mapRows(snapshot, (m) => ordered(memberFields(m), MEMBERS_COLUMNS)),
    goodCount: snapshot.length,
    bad: badM(["user", "loyalty"], MEMBERS_COLUMNS),
  });
  w.acceptMembers(snapshot, order.members);

  // ---- Points incremental: changed rows (newer version), moved rows and unchanged duplicates
  const incRows = [...changed, ...duplicated, ...moves.points].sort((a, b) =>
    BigInt(a.eventId) < BigInt(b.eventId) ? -1 : BigInt(a.eventId) > BigInt(b.eventId) ? 1 : 0,
  );
  const incKey = `exports/points/GroupLoyalty-Points_${pointsIncAt}.csv`;
  const lastMonth = r.months[nMonths - 1] as string;
  const incRowsRead = await w.csv({
    target: await fileTarget(w.path(incKey), false),
    file: incKey,
    template: "points",
    eol: "\r\n",
    bom: false,
    header: POINTS_COLUMNS_C,
    good: mapRows(incRows, (p) => ordered(pointsFields(p), POINTS_COLUMNS_C)),
    goodCount: incRows.length,
    bad: (monthBad[2] ?? []).map((k) =>
      badPoints(spareAward(rng, world, lastMonth, ids), k, POINTS_COLUMNS_C),
    ),
  });
  w.acceptPoints(incRows, order.pointsInc);

  // ---- Members incremental
  const membersIncKey = `exports/members/GroupLoyalty Members_${fileStamp(membersIncAt)}`;
  const changedMembers: MemberRow[] = [];
  const stale: MemberRow[] = [];
  for (const m of snapshot) {
    if (rng.chance(0.1)) {
      const t = rng.int(Math.floor(membersAt / 1000) + 1, Math.floor(membersIncAt / 1000) - 1);
      changedMembers.push(memberRow(rng, m.user, t));
    } else if (stale.length < 2 && rng.chance(0.05)) {
      stale.push(memberRow(rng, m.user, m.autoUpdateS - rng.int(86_400, 30 * 86_400)));
    }
  }
  const membersInc = rng.shuffle([...changedMembers, ...stale]);
  const membersIncRows = await w.csv({
    target: await fileTarget(w.path(membersIncKey), false),
    file: membersIncKey,
    template: "members",
    eol: "\r\n",
    bom: false,
    header: MEMBERS_COLUMNS_B,
    good: mapRows(membersInc, (m) => ordered(memberFields(m), MEMBERS_COLUMNS_B)),
    goodCount: membersInc.length,
    bad: badM(["emptyUser"], MEMBERS_COLUMNS_B),
    noFinalEol: true,
  });
  w.acceptMembers(membersInc, order.membersInc);

  // ---- Points Redemption Summary incremental: the moved redemptions and an unchanged duplicate
  const movedSummaryIds = new Set(moves.summaries.map((s) => s.eventId));
  const summaryDuplicated = moveRng
    .shuffle(
      summariesByMonth.flat().filter((s) => !movedSummaryIds.has(s.eventId) && !s.notes.includes("\n")),
    )
    .slice(0, 1);
  const summaryInc = [...moves.summaries, ...summaryDuplicated].sort((a, b) =>
    BigInt(a.eventId) < BigInt(b.eventId) ? -1 : BigInt(a.eventId) > BigInt(b.eventId) ? 1 : 0,
  );
  const summaryIncKey = `exports/points redemption summary/GroupLoyalty_Points Redemption Summary_${fileStamp(summaryIncAt)}.csv`;
  const summaryIncRows = await w.csv({
    target: await fileTarget(w.path(summaryIncKey), false),
    file: summaryIncKey,
    template: "points_redemption_summary",
    eol: "\r\n",
    bom: true,
    header: SUMMARY_COLUMNS,
    good: mapRows(summaryInc, (s) => ordered(summaryFields(s), SUMMARY_COLUMNS)),
    goodCount: summaryInc.length,
    bad: [badSummary(spareSummary(rng, world, lastMonth, ids), "eventId", SUMMARY_COLUMNS)],
  });
  w.acceptSummaries(summaryInc, order.summaryInc);

  w.files.push(
    {
      key: membersKey,
      template: "members",
      deliveryOrder: order.members,
      deliveredAt: new Date(membersAt).toISOString(),
      packaging: "csv",
      kind: "full",
      rows: membersRows,
      bom: false,
      lineEnd: "LF",
      headerStyle: "raw",
    },
    {
      key: incKey,
      template: "points",
      deliveryOrder: order.pointsInc,
      deliveredAt: new Date(pointsIncAt).toISOString(),
      packaging: "csv",
      kind: "incremental",
      rows: incRowsRead,
      bom: false,
      lineEnd: "CRLF",
      headerStyle: "raw",
    },
    {
      key: membersIncKey,
      template: "members",
      deliveryOrder: order.membersInc,
      deliveredAt: new Date(membersIncAt).toISOString(),
      packaging: "csv",
      kind: "incremental",
      rows: membersIncRows,
      bom: false,
      lineEnd: "CRLF",
      headerStyle: "raw",
    },
    {
      key: summaryIncKey,
      template: "points_redemption_summary",
      deliveryOrder: order.summaryInc,
      deliveredAt: new Date(summaryIncAt).toISOString(),
      packaging: "csv",
      kind: "incremental",
      rows: summaryIncRows,
      bom: true,
      lineEnd: "CRLF",
      headerStyle: "raw",
    },
  );
  // The data-quality truth lists files in delivery order, like the manifest.
  const deliveryOf = new Map(w.files.map((f) => [f.key, f.deliveryOrder]));
  const fileKey = (file: string): string => file.split("!")[0] as string;
  w.input.files.sort(
    (a, b) => (deliveryOf.get(fileKey(a.file)) ?? 0) - (deliveryOf.get(fileKey(b.file)) ?? 0),
  );

  const truth = computeTruth(w.input);
  const incremental: IncrementalFacts = {
    pointsChanged: changed.length,
    pointsChangeKinds: changeKinds,
    exampleChangedEventIds: changed.slice(0, 10).map((p) => p.eventId),
    duplicatedEventIds: duplicated.map((p) => p.eventId),
    membersChanged: changedMembers.length,
    membersStale: stale.map((m) => m.user.id),
    summaryDuplicatedEventIds: summaryDuplicated.map((s) => s.eventId),
    moved: moves.moved,
  };
  const manifest: SampleManifest = {
    seed: r.seed,
    months: r.months,
    now: r.now.toISOString(),
    scale: r.scale,
    timeZone: "UTC",
    files: [...w.files].sort((a, b) => a.deliveryOrder - b.deliveryOrder),
    groupIds: world.groupIds,
    userCount: world.users.length,
    membership: {
      initial: "membership/initial.json",
      current: "membership/current.json",
      note: "Both syncs happen at `now`, after every sample month: sync initial.json first, then current.json.",
    },
    truth: "truth.json",
    cases: world.cases,
    badRows: w.badRows,
    incremental,
  };

  await mkdir(join(r.outDir, "membership"), { recursive: true });
  const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
  await writeFile(join(r.outDir, "membership/initial.json"), json(world.initial));
  await writeFile(join(r.outDir, "membership/current.json"), json(world.current));
  await writeFile(join(r.outDir, "truth.json"), json(truth));
  await writeFile(join(r.outDir, "manifest.json"), json(manifest));
  return { manifest, truth, input: w.input, world };
}
