/**
 * Dates of the exports (DESIGN.md "Data semantics"): YYYYMMDD date ids, YYYY-MM-DD, DD-MM-YYYY,
 * epoch seconds or milliseconds. Date-only values are calendar dates (never shifted by any time zone);
 * epoch instants become the calendar date in the configured report time zone. The machine's TZ is never used.
 */

export type DateError = "BAD_DATE";

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function validYmd(y: number, m: number, d: number): boolean {
  if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const max = m === 2 && leap ? 29 : (DAYS[m - 1] ?? 0);
  return d <= max;
}

function ymd(y: number, m: number, d: number): string {
  return `${y}-${m < 10 ? "0" : ""}${m}-${d < 10 ? "0" : ""}${d}`;
}

function isDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return s.length > 0;
}

/** Converts epoch milliseconds to a calendar date in one time zone, caching per hour (offsets are whole minutes, changes happen on hour boundaries in practice; the cache key is the UTC hour). */
export class ZonedCalendar {
  private readonly fmt: Intl.DateTimeFormat;
  private readonly cache = new Map<number, string>();
  constructor(readonly timeZone: string) {
    this.fmt = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    });
  }
  dateOf(epochMs: number): string {
    // Offsets in use are multiples of 15 minutes: cache per 15-minute slot.
    const slot = Math.floor(epochMs / 900_000);
    let v = this.cache.get(slot);
    if (v === undefined) {
      v = this.fmt.format(new Date(slot * 900_000));
      if (this.cache.size > 100_000) this.cache.clear();
      this.cache.set(slot, v);
    }
    return v;
  }
}

/** Epoch seconds (10 digits) or milliseconds (13 digits), detected by size. */
export function parseEpochMs(s: string): number | DateError {
  const t = s.trim();
  if (!isDigits(t)) return "BAD_DATE";
  if (t.length === 13) return Number(t);
  if (t.length === 10 || t.length === 9) return Number(t) * 1000;
  return "BAD_DATE";
}

/** Parse any accepted date form to YYYY-MM-DD. */
export function parseDate(raw: string, cal: ZonedCalendar): string | DateError {
  const s = raw.trim();
  const n = s.length;
  if (n === 8 && isDigits(s)) {
    const y = Number(s.slice(0, 4));
    const m = Number(s.slice(4, 6));
    const d = Number(s.slice(6, 8));
    return validYmd(y, m, d) ? ymd(y, m, d) : "BAD_DATE";
  }
  if (n >= 10 && s.charCodeAt(4) === 45 && s.charCodeAt(7) === 45) {
    // YYYY-MM-DD, optionally followed by a time ("YYYY-MM-DD HH:mm:ss"): the calendar date as written.
    const y = s.slice(0, 4);
    const m = s.slice(5, 7);
    const d = s.slice(8, 10);
    if (n > 10 && s[10] !== " " && s[10] !== "T") return "BAD_DATE";
    if (!isDigits(y) || !isDigits(m) || !isDigits(d)) return "BAD_DATE";
    return validYmd(+y, +m, +d) ? ymd(+y, +m, +d) : "BAD_DATE";
  }
  if (n >= 10 && s.charCodeAt(2) === 45 && s.charCodeAt(5) === 45) {
    const d = s.slice(0, 2);
    const m = s.slice(3, 5);
    const y = s.slice(6, 10);
    if (n > 10 && s[10] !== " ") return "BAD_DATE";
    if (!isDigits(y) || !isDigits(m) || !isDigits(d)) return "BAD_DATE";
    return validYmd(+y, +m, +d) ? ymd(+y, +m, +d) : "BAD_DATE";
  }
  const ms = parseEpochMs(s);
  return typeof ms === "number" ? cal.dateOf(ms) : ms;
}

/** Last calendar day of a YYYY-MM period. */
export function lastDayOf(period: string): string {
  const y = Number(period.slice(0, 4));
  const m = Number(period.slice(5, 7));
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const d = m === 2 && leap ? 29 : (DAYS[m - 1] ?? 31);
  return ymd(y, m, d);
}

/**
 * A row version in epoch milliseconds from a YYYYMMDD date id and an HHMMSS (or HHMM) time id, read as
 * wall-clock time (comparable with epoch-based versions of the same source); 0 when the date is missing.
 */
export function dateTimeVersion(dateId: string, timeId: string): number {
  const d = dateId.trim();
  if (!(d.length === 8 && isDigits(d))) return 0;
  const t = timeId.trim();
  const tn = isDigits(t) ? Number(t) : 0;
  const hhmmss = t.length <= 4 ? tn * 100 : tn;
  const hh = Math.floor(hhmmss / 10000);
  const mm = Math.floor(hhmmss / 100) % 100;
  const ss = hhmmss % 100;
  return Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)) - 1, Number(d.slice(6, 8)), hh, mm, ss);
}
