/** UTC calendar helpers for the sample generator. Months are "YYYY-MM", date ids "YYYYMMDD". */

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

export function parseMonth(month: string): { year: number; month: number } {
  const m = /^(\d{4})-(\d{2})$/.exec(month);
  if (!m) throw new Error(`bad month ${month}, expected YYYY-MM`);
  const year = Number(m[1]);
  const mon = Number(m[2]);
  if (mon < 1 || mon > 12) throw new Error(`bad month ${month}`);
  return { year, month: mon };
}

export function daysInMonth(month: string): number {
  const { year, month: mon } = parseMonth(month);
  return new Date(Date.UTC(year, mon, 0)).getUTCDate();
}

/** Epoch ms of 00:00:00 UTC on the first day of the month. */
export function monthStartMs(month: string): number {
  const { year, month: mon } = parseMonth(month);
  return Date.UTC(year, mon - 1, 1);
}

/** Epoch ms of 00:00:00 UTC on the first day of the following month. */
export function monthEndMs(month: string): number {
  const { year, month: mon } = parseMonth(month);
  return Date.UTC(year, mon, 1);
}

export function monthOf(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
}

/** The `count` full calendar months before the month of `now`, oldest first. */
export function monthsBefore(now: Date, count: number): string[] {
  const out: string[] = [];
  for (let i = count; i >= 1; i--) {
    out.push(monthOf(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i, 1)));
  }
  return out;
}

/** Civil date of a day number since 1970-01-01 (H. Hinnant's algorithm): no Date object per call. */
function civil(days: number): { y: number; m: number; d: number } {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return { y: yoe + era * 400 + (m <= 2 ? 1 : 0), m, d };
}

export function dateId(ms: number): string {
  const { y, m, d } = civil(Math.floor(ms / DAY_MS));
  return `${y}${pad(m)}${pad(d)}`;
}

export function timeId(ms: number): string {
  const s = Math.floor((ms - Math.floor(ms / DAY_MS) * DAY_MS) / 1000);
  return `${pad(Math.floor(s / 3600))}${pad(Math.floor(s / 60) % 60)}${pad(s % 60)}`;
}

/** YYYY-MM-DD */
export function isoDate(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** The `YYYY-MM-DD-HH-mm-ss` form used in export file names. */
export function fileStamp(ms: number): string {
  const d = new Date(ms);
  return `${isoDate(ms)}-${pad(d.getUTCHours())}-${pad(d.getUTCMinutes())}-${pad(d.getUTCSeconds())}`;
}

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;
