/**
 * Row validation and normalization, hand-coded per template (the hot path: no per-row schema library).
 * A row becomes a staged row (fixed columns per dataset) or a reject naming the field and the reason.
 */
import { dateTimeVersion, parseDate, parseEpochMs, type ZonedCalendar } from "./dates.ts";
import { type DecimalError, decimalErrorText, parseThousandths } from "./decimal.ts";
import type { DetectedTemplate, TemplateName } from "./templates.ts";

/** Staged columns per dataset; the first column is the upsert key. Decimals are integer thousandths. */
export const STAGED_COLUMNS = {
  points: [
    "event_id",
    "user_id",
    "event_date",
    "allocated",
    "deducted",
    "deduction_type",
    "event_name",
    "version",
  ],
  points_redemption_summary: [
    "event_id",
    "user_id",
    "event_date",
    "points_redeemed",
    "redemption_type",
    "version",
  ],
  members: ["user_id", "loyalty_points", "lifetime_points", "lifetime_purchased", "tier", "version"],
  rewards: ["reward_id", "user_id", "event_date", "group_flag", "version"],
} as const satisfies Record<TemplateName, readonly string[]>;

/** Column of the row version in a dataset's staged rows (the upsert key is column 0). */
export function versionColumn(dataset: TemplateName): number {
  return (STAGED_COLUMNS[dataset] as readonly string[]).indexOf("version");
}

/**
 * One accepted row: its staged line (the dataset's STAGED_COLUMNS as CSV text, without line end) built
 * directly from the fields, with no intermediate array: this is the hot path.
 */
export class StagedRow {
  constructor(
    /** The upsert key (event id, or user id for Members). */
    readonly key: string,
    /** YYYY-MM of the event date; null for snapshot datasets (Members), which the caller places. */
    readonly period: string | null,
    /** The staged CSV line. */
    readonly line: string,
  ) {}

  /** The staged values (tests and diagnostics; not used on the hot path). */
  get values(): string[] {
    return splitCsvLine(this.line);
  }
}

/** Splits one CSV line of RFC 4180 text (no line ends outside quotes). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (line.charCodeAt(i) === 34) {
      let v = "";
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) throw new Error("unterminated quote");
        v += line.slice(i, q);
        if (line.charCodeAt(q + 1) === 34) {
          v += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      out.push(v);
    } else {
      const c = line.indexOf(",", i);
      out.push(line.slice(i, c < 0 ? line.length : c));
      i = c < 0 ? line.length : c;
    }
    if (i >= line.length) return out;
    i++; // the comma
    if (i === line.length) {
      out.push("");
      return out;
    }
  }
}

/** A CSV cell for a text value: quoted only when needed (quote, comma, line end, leading BOM). */
export function csvCell(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 34 || c === 44 || c === 10 || c === 13 || (i === 0 && c === 0xfeff))
      return `"${v.replaceAll('"', '""')}"`;
  }
  return v;
}

export interface RowReject {
  /** The header name of the offending column as delivered, or "(record)". */
  field: string;
  reason: string;
}

export type Normalizer = (fields: readonly string[]) => StagedRow | RowReject;

const NULLS = new Set(["", "null", "\\n", "not captured", "n/a"]);

/** Null sentinels (DESIGN.md): empty, NULL, null, \N, Not Captured; `-1` too in id columns. */
export function isNullish(v: string): boolean {
  const n = v.length;
  if (n === 0) return true;
  if (n > 12) return false;
  // Fast path: a value starting with a digit, a sign or a dot is never a sentinel.
  const c = v.charCodeAt(0);
  if ((c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46) return false;
  return NULLS.has(v.trim().toLowerCase());
}

/** Trims only when there is something to trim (the common case allocates nothing). */
function trimmed(v: string): string {
  const n = v.length;
  if (n === 0) return v;
  const a = v.charCodeAt(0);
  const b = v.charCodeAt(n - 1);
  return a <= 32 || b <= 32 || a === 0xa0 || b === 0xa0 || a === 0xfeff ? v.trim() : v;
}

function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

export interface NormalizeOptions {
  calendar: ZonedCalendar;
  /** Optional number locale allowing grouping separators, e.g. {group: ",", decimal: "."}. */
  numberLocale?: { group: string; decimal: string } | undefined;
}

class Reject {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {}
}

/** Build the normalizer for a detected header. */
export function createNormalizer(
  detected: DetectedTemplate,
  header: readonly string[],
  opts: NormalizeOptions,
): Normalizer {
  const { columns } = detected;
  const width = header.length;
  const col = (name: string): number => columns.get(name) ?? -1;
  const label = (idx: number): string => header[idx] ?? "(record)";
  const get = (fields: readonly string[], idx: number): string => (idx < 0 ? "" : trimmed(fields[idx] ?? ""));

  const id = (fields: readonly string[], idx: number, what: string): string => {
    const v = get(fields, idx);
    if (isNullish(v) || v === "-1") throw new Reject(label(idx), `${what} is missing`);
    if (!isDigits(v)) throw new Reject(label(idx), `${what} is not a numeric id`);
    return v;
  };
  // Dates repeat from row to row: remember the last few raw values.
  const dateCache = new Map<string, string>();
  const date = (fields: readonly string[], idx: number): string => {
    const v = get(fields, idx);
    const hit = dateCache.get(v);
    if (hit !== undefined) return hit;
    if (isNullish(v)) throw new Reject(label(idx), "date is missing");
    const d = parseDate(v, opts.calendar);
    if (d !== "BAD_DATE") {
      if (dateCache.size >= 4096) dateCache.clear();
      dateCache.set(v, d);
    }
    if (d === "BAD_DATE") throw new Reject(label(idx), `not a date: ${JSON.stringify(v.slice(0, 40))}`);
    return d;
  };
  const dec = (fields: readonly string[], idx: number): string => {
    if (idx < 0) return "";
    const v = get(fields, idx);
    if (v === "0") return "0";
    if (isNullish(v)) return "";
    const t = parseThousandths(v, opts.numberLocale);
    if (typeof t !== "number") throw new Reject(label(idx), decimalErrorText[t as DecimalError]);
    return String(t);
  };
  /** Lower-cased text, as a CSV cell. The last value is remembered (types repeat from row to row). */
  const texts = new Map<string, string>();
  const text = (fields: readonly string[], idx: number): string => {
    const v = get(fields, idx);
    const hit = texts.get(v);
    if (hit !== undefined) return hit;
    const out = isNullish(v) ? "" : csvCell(v.toLowerCase());
    if (v.length <= 64) {
      if (texts.size >= 256) texts.clear();
      texts.set(v, out);
    }
    return out;
  };
  const epochVersion = (fields: readonly string[], idx: number): number => {
    const v = get(fields, idx);
    if (isNullish(v)) return 0;
    const ms = parseEpochMs(v);
    if (ms === "BAD_DATE") throw new Reject(label(idx), "not an epoch time");
    return ms;
  };

  /** dateTimeVersion with the day part remembered per date id (equal results: the time adds linearly). */
  const dayMs = new Map<string, number>();
  const luVersion = (dateId: string, timeId: string): number => {
    let day = dayMs.get(dateId);
    if (day === undefined) {
      day = dateTimeVersion(dateId, "");
      if (dayMs.size >= 4096) dayMs.clear();
      dayMs.set(dateId, day);
    }
    if (day === 0) return 0;
    const n = timeId.length;
    if (n === 0) return day;
    let t = 0;
    for (let i = 0; i < n; i++) {
      const c = timeId.charCodeAt(i) - 48;
      if (c < 0 || c > 9) return dateTimeVersion(dateId, timeId); // not digits: the general rule
      t = t * 10 + c;
    }
    const hhmmss = n <= 4 ? t * 100 : t;
    return (
      day +
      Math.floor(hhmmss / 10000) * 3_600_000 +
      (Math.floor(hhmmss / 100) % 100) * 60_000 +
      (hhmmss % 100) * 1000
    );
  };

  const build = (fn: (fields: readonly string[]) => StagedRow): Normalizer => {
    return (fields) => {
      if (fields.length !== width) {
        return { field: "(record)", reason: `expected ${width} fields, got ${fields.length}` };
      }
      try {
        return fn(fields);
      } catch (e) {
        if (e instanceof Reject) return { field: e.field, reason: e.reason };
        throw e;
      }
    };
  };

  switch (detected.template.name) {
    case "points": {
      const cEvent = col("event_id");
      const cUser = col("dim_event_user_id");
      const cDate = col("dim_event_date_id");
      const cAlloc = col("allocated_points");
      const cDed = col("deducted_points");
      const cType = col("dim_deduction_type_id");
      const cName = col("event_name");
      const cLuDate = col("dim_latest_updated_date_id");
      const cLuTime = col("dim_latest_updated_time_id");
      const cAuto = col("auto_update_time");
      return build((r) => {
        const eventId = id(r, cEvent, "event id");
        const userId = id(r, cUser, "user id");
        const d = date(r, cDate);
        const alloc = dec(r, cAlloc);
        const ded = dec(r, cDed);
        let version = cLuDate >= 0 ? luVersion(get(r, cLuDate), get(r, cLuTime)) : 0;
        if (version === 0 && cAuto >= 0) version = epochVersion(r, cAuto);
        return new StagedRow(
          eventId,
          d.slice(0, 7),
          `${eventId},${userId},${d},${alloc},${ded},${text(r, cType)},${text(r, cName)},${version}`,
        );
      });
    }
    case "points_redemption_summary": {
      const cEvent = col("event_id");
      const cUser = col("dim_event_user_id");
      const cDate = col("dim_event_date_id");
      const cTime = col("points_redemption_time");
      const cPts = col("points_redeemed");
      const cType = col("dim_redemption_type_id");
      const cAuto = col("auto_update_time");
      return build((r) => {
        const eventId = id(r, cEvent, "event id");
        const userId = id(r, cUser, "user id");
        const d = cDate >= 0 && !isNullish(get(r, cDate)) ? date(r, cDate) : date(r, cTime);
        const pts = dec(r, cPts);
        let version = cAuto >= 0 ? epochVersion(r, cAuto) : 0;
        if (version === 0 && cTime >= 0) version = epochVersion(r, cTime);
        return new StagedRow(
          eventId,
          d.slice(0, 7),
          `${eventId},${userId},${d},${pts},${text(r, cType)},${version}`,
        );
      });
    }
    case "members": {
      const cUser = col("dim_event_user_id");
      const cBal = col("loyalty_points");
      const cLife = col("lifetime_points");
      const cPurch = col("lifetime_purchased");
      const cTier = col("slab_name");
      const cAuto = col("auto_update_time");
      return build((r) => {
        const userId = id(r, cUser, "user id");
        const tier = get(r, cTier);
        const version = cAuto >= 0 ? epochVersion(r, cAuto) : 0;
        return new StagedRow(
          userId,
          null,
          `${userId},${dec(r, cBal)},${dec(r, cLife)},${dec(r, cPurch)},${isNullish(tier) ? "" : csvCell(tier)},${version}`,
        );
      });
    }
    case "rewards": {
      const cId = col("reward_transaction_id");
      const cUser = col("dim_event_user_id");
      const cDate = col("dim_event_date_id");
      const cFlag = col("group_loyalty_redemption");
      const cAuto = col("auto_update_time");
      return build((r) => {
        const rid = id(r, cId, "transaction id");
        const userId = id(r, cUser, "user id");
        const d = date(r, cDate);
        const flagText = text(r, cFlag);
        let flag: string;
        if (flagText === "1" || flagText === "true" || flagText === "yes") flag = "1";
        else if (flagText === "0" || flagText === "false" || flagText === "no" || flagText === "") flag = "0";
        else throw new Reject(label(cFlag), "not a 0/1 flag");
        const version = cAuto >= 0 ? epochVersion(r, cAuto) : 0;
        return new StagedRow(rid, d.slice(0, 7), `${rid},${userId},${d},${flag},${version}`);
      });
    }
  }
}

export function isReject(r: StagedRow | RowReject): r is RowReject {
  return !(r instanceof StagedRow);
}
