/**
 * Points and Points Redemption Summary events of one month, generated in memory. Amounts are thousandths.
 * Every redemption gives one summary row and 1-3 Points deduction rows of type redeemed whose
 * deduction_summary_id is the summary's event_id.
 */
import { DAY_MS, daysInMonth, monthEndMs, monthStartMs } from "./dates.ts";
import type { Rng } from "./rng.ts";
import type { SampleUser, World } from "./world.ts";

export type Style = 0 | 1 | 2;

export interface SummaryRow {
  eventId: string;
  userId: string;
  ms: number;
  pointsRedeemed: bigint;
  categoryId: string;
  /** dim_redemption_type_id as written. */
  type: string;
  tillId: string;
  programId: string;
  autoUpdateS: number;
  billId: string;
  billNumber: string;
  redemptionId: string;
  extRef: string;
  notes: string;
  sourceType: string;
  referenceId: string;
  style: Style;
  seq: number;
}

export interface PointsRow {
  eventId: string;
  userId: string;
  ms: number;
  allocated: bigint;
  deducted: bigint;
  /** dim_deduction_type_id as written; "" on awards. */
  deductionType: string;
  /** The redemption summary this deduction belongs to. */
  summary: SummaryRow | null;
  deductionSummaryId: string;
  redemptionId: string;
  billId: string;
  billNumber: string;
  tillId: string;
  categoryId: string;
  promotionId: string;
  eventName: string;
  programId: string;
  updatedMs: number;
  style: Style;
  seq: number;
}

export interface MonthEvents {
  points: PointsRow[];
  summaries: SummaryRow[];
}

export interface IdCounters {
  points: bigint;
  summary: bigint;
}

const BILL_SENTINELS = ["-1", "Not Captured", "", "NULL"] as const;
const NOTES = [
  "Redeemed at store",
  "Bill 4411, counter 2",
  'Customer said "thanks"',
  'Mixed: a, "b", c',
  "Gift card top-up",
  "Weekend offer",
] as const;
const FRACTIONS = [500, 250, 125, 1, 5, 50, 999, 100] as const;

/** Case variants of a lower-case value: mostly as is, sometimes upper case or capitalised. */
export function caseVariant(rng: Rng, s: string): string {
  const r = rng.next();
  if (r < 0.7) return s;
  if (r < 0.85) return s.toUpperCase();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The summary's enum is upper case at source; a few rows come in other case. */
function enumVariant(rng: Rng, s: string): string {
  const r = rng.next();
  if (r < 0.86) return s;
  if (r < 0.94) return s.toLowerCase();
  return s.charAt(0) + s.slice(1).toLowerCase();
}

export function amount(rng: Rng, maxPoints = 500): bigint {
  const whole = BigInt(rng.int(1, maxPoints)) * 1000n;
  return rng.chance(0.3) ? whole + BigInt(rng.pick(FRACTIONS)) : whole;
}

export function style(rng: Rng): Style {
  return rng.pick([0, 0, 0, 1, 1, 2] as const);
}

function redemptionCode(rng: Rng): string {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  let s = "";
  for (let i = 0; i < 6; i++) s += alphabet.charAt(rng.int(0, alphabet.length - 1));
  return s;
}

function bill(rng: Rng): { id: string; number: string } {
  if (rng.chance(0.2)) return { id: rng.pick(BILL_SENTINELS), number: rng.pick(BILL_SENTINELS) };
  return { id: rng.digits(9), number: `B${rng.digits(6)}` };
}

/** Scaled count around mean * k (k = activity x scale). */
function count(rng: Rng, mean: number, k: number): number {
  const n = mean * k * (0.5 + rng.next());
  return Math.floor(n) + (rng.chance(n - Math.floor(n)) ? 1 : 0);
}

export class MonthGenerator {
  private seq = 0;
  private readonly start: number;
  private readonly end: number;
  private readonly days: number;

  constructor(
    private readonly rng: Rng,
    private readonly month: string,
  ) {
    this.start = monthStartMs(month);
    this.end = monthEndMs(month);
    this.days = daysInMonth(month);
  }

  /** A random instant in the month, at least `room` seconds before its day ends. */
  private randomMs(room = 0): number {
    const day = this.rng.int(0, this.days - 1);
    return this.start + day * DAY_MS + this.rng.int(0, 86_399 - room) * 1000;
  }

  private onDay(dateId: string): number {
    const ms = Date.UTC(
      Number(dateId.slice(0, 4)),
      Number(dateId.slice(4, 6)) - 1,
      Number(dateId.slice(6, 8)),
    );
    return ms + this.rng.int(0, 86_000) * 1000;
  }

  private updated(ms: number): number {
    const delay = this.rng.chance(0.25) ? this.rng.int(1, 3 * 86_400) : this.rng.int(0, 600);
    return Math.min(ms + delay * 1000, this.end - 1000);
  }

  private tillId(): string {
    return `5000${this.rng.digits(4)}`;
  }

  award(user: SampleUser, ms: number): PointsRow {
    const rng = this.rng;
    const b = bill(rng);
    return {
      eventId: "",
      userId: user.id,
      ms,
      allocated: amount(rng),
      deducted: 0n,
      deductionType: "",
      summary: null,
      deductionSummaryId: rng.chance(0.8) ? "-1" : "",
      redemptionId: "",
      billId: b.id,
      billNumber: b.number,
      tillId: this.tillId(),
      categoryId: String(rng.int(1, 5)),
      promotionId: rng.chance(0.7) ? rng.digits(5) : "-1",
      eventName: user.inSomeGroup && rng.chance(0.15) ? "GroupTransactionAdd" : "TransactionAdd",
      programId: rng.chance(0.9) ? "1771" : "1772",
      updatedMs: this.updated(ms),
      style: style(rng),
      seq: this.seq++,
    };
  }

  deduction(
    user: SampleUser,
    ms: number,
    type: string,
    deducted: bigint,
    summary: SummaryRow | null,
  ): PointsRow {
    const rng = this.rng;
    const b = summary ? { id: summary.billId, number: summary.billNumber } : bill(rng);
    return {
      eventId: "",
      userId: user.id,
      ms,
      allocated: 0n,
      deducted,
      deductionType: caseVariant(rng, type),
      summary,
      deductionSummaryId: "-1",
      redemptionId: summary ? summary.redemptionId : "",
      billId: b.id,
      billNumber: b.number,
      tillId: summary ? summary.tillId : this.tillId(),
      categoryId: summary ? summary.categoryId : String(rng.int(1, 5)),
      promotionId: "-1",
      eventName: "",
      programId: summary ? summary.programId : "1771",
      updatedMs: this.updated(ms),
      style: style(rng),
      seq: this.seq++,
    };
  }

  summary(user: SampleUser, ms: number, type: string, points: bigint, group: boolean): SummaryRow {
    const rng = this.rng;
    const b = bill(rng);
    return {
      eventId: "",
      userId: user.id,
      ms,
      pointsRedeemed: points,
      categoryId: group ? "-1" : String(rng.int(1, 5)),
      type,
      tillId: this.tillId(),
      programId: rng.chance(0.9) ? "1771" : "1772",
      autoUpdateS: Math.floor(this.updated(ms) / 1000),
      billId: b.id,
      billNumber: b.number,
      redemptionId: redemptionCode(rng),
      extRef: rng.chance(0.5) ? `ER${rng.digits(8)}` : "",
      notes: rng.chance(0.3) ? rng.pick(NOTES) : "",
      sourceType: rng.chance(0.8) ? "API" : "IMPORT",
      referenceId: rng.chance(0.4) ? rng.digits(7) : "",
      style: style(rng),
      seq: this.seq++,
    };
  }

  /** A redemption: one summary row, 1-3 Points rows of type redeemed; sometimes reversed later. */
  private redemption(user: SampleUser, out: MonthEvents): void {
    const rng = this.rng;
    const ms = this.randomMs(60);
    const group = user.inSomeGroup && rng.chance(0.35);
    const type = group
      ? enumVariant(rng, "GROUP_REDEMPTION")
      : rng.chance(0.04)
        ? enumVariant(rng, "REDEEMED")
        : enumVariant(rng, "REDEMPTION");
    const parts = rng.int(1, 3);
    const pieces: bigint[] = [];
    for (let i = 0; i < parts; i++) pieces.push(amount(rng, 300));
    const total = pieces.reduce((a, b) => a + b, 0n);
    const s = this.summary(user, ms, type, total, group);
    out.summaries.push(s);
    pieces.forEach((p, i) => {
      out.points.push(this.deduction(user, ms + i * 1000, "redeemed", p, s));
    });
    if (rng.chance(0.12)) {
      const later = ms + rng.int(1, 5) * DAY_MS;
      if (later < this.end) {
        const reversed = pieces[0] as bigint;
        const r = this.summary(user, later, enumVariant(rng, "REVERSAL"), reversed, false);
        out.summaries.push(r);
        out.points.push(this.deduction(user, later, "redemption_reversal", reversed, r));
      }
    }
  }

  /** Every row of one user in this month. */
  userMonth(user: SampleUser, scale: number, forcedDates: readonly string[], out: MonthEvents): void {
    const rng = this.rng;
    const k = user.activity * scale;
    for (let n = count(rng, 10, k); n > 0; n--) out.points.push(this.award(user, this.randomMs()));
    for (const d of forcedDates) {
      if (d.slice(0, 6) === this.month.replace("-", "")) out.points.push(this.award(user, this.onDay(d)));
    }
    for (let n = count(rng, 1.5, k); n > 0; n--) this.redemption(user, out);
    for (let n = count(rng, 0.8, k); n > 0; n--) {
      out.points.push(this.deduction(user, this.randomMs(), "expired", amount(rng, 80), null));
    }
    for (let n = count(rng, 0.4, k); n > 0; n--) {
      const t = rng.chance(0.7) ? "return" : "return_historical";
      out.points.push(this.deduction(user, this.randomMs(), t, amount(rng, 120), null));
    }
    for (let n = count(rng, 0.15, k); n > 0; n--) {
      const t = rng.pick(["expiry_reverted", "redemption_reverted", "redeemed_by_transfer_reverted"]);
      out.points.push(this.deduction(user, this.randomMs(), t, amount(rng, 60), null));
    }
    for (let n = count(rng, 0.3, k); n > 0; n--) {
      const t = rng.pick([
        "cancelled",
        "redeemed_by_transfer",
        "redeemed_by_conversion",
        "manual_adjustment",
      ]);
      out.points.push(this.deduction(user, this.randomMs(), t, amount(rng, 60), null));
    }
    if (rng.chance(0.01 * k)) {
      out.summaries.push(
        this.summary(user, this.randomMs(), enumVariant(rng, "REVERSAL_ON_RETURN"), amount(rng, 40), false),
      );
    }
  }
}

const byTime = <T extends { ms: number; seq: number }>(a: T, b: T): number => a.ms - b.ms || a.seq - b.seq;

/** All events of one month, sorted by time, with event ids assigned (ascending, with gaps). */
export function generateMonth(
  rng: Rng,
  world: World,
  month: string,
  scale: number,
  ids: IdCounters,
): MonthEvents {
  const gen = new MonthGenerator(rng, month);
  const out: MonthEvents = { points: [], summaries: [] };
  for (const user of world.users) {
    if (world.silent.get(user.id)?.has(month)) continue;
    gen.userMonth(user, scale, world.forced.get(user.id) ?? [], out);
  }
  out.summaries.sort(byTime);
  for (const s of out.summaries) {
    ids.summary += BigInt(rng.int(1, 9));
    s.eventId = ids.summary.toString();
  }
  out.points.sort(byTime);
  for (const p of out.points) {
    ids.points += BigInt(rng.int(1, 9));
    p.eventId = ids.points.toString();
    if (p.summary) p.deductionSummaryId = p.summary.eventId;
  }
  return out;
}

/** A fresh award used as the body of a bad row (it gets an id beyond every real one). */
export function spareAward(rng: Rng, world: World, month: string, ids: IdCounters): PointsRow {
  const gen = new MonthGenerator(rng, month);
  const user = rng.pick(world.users);
  const row = gen.award(user, monthStartMs(month) + rng.int(0, daysInMonth(month) * 86_400 - 1) * 1000);
  ids.points += BigInt(rng.int(1, 9));
  row.eventId = ids.points.toString();
  return row;
}

export function spareSummary(rng: Rng, world: World, month: string, ids: IdCounters): SummaryRow {
  const gen = new MonthGenerator(rng, month);
  const user = rng.pick(world.users);
  const row = gen.summary(
    user,
    monthStartMs(month) + rng.int(0, daysInMonth(month) * 86_400 - 1) * 1000,
    "REDEMPTION",
    amount(rng),
    false,
  );
  ids.summary += BigInt(rng.int(1, 9));
  row.eventId = ids.summary.toString();
  return row;
}
