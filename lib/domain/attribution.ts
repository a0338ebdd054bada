import type { Membership } from "./membership.ts";

/**
 * Attribution (DESIGN.md "Data semantics"): member m belongs to group g on date d when a membership (g, m)
 * is known, its joined date (when known) is on or before d, and it is active, or a sync saw it active and
 * later saw it exited after d (exitSeenAt's calendar date in the report time zone is after d). Earlier
 * stints (before a rejoin) count on joinedOn <= d < their exit date. A membership first seen exited never
 * counts. Of several qualifying groups the default group wins, else the numerically smallest group id.
 *
 * One refinement of the rule: a stint cannot start before the previous stint's observed exit date (at
 * that instant the member was seen outside the group), so a rejoin whose joinedOn is unknown or stale does
 * not count the gap between exit and rejoin.
 *
 * Dates are calendar dates `YYYY-MM-DD`, compared as text; the process time zone never matters.
 */

export class AttributionError extends Error {
  constructor(
    readonly code: "ATTRIBUTION_BAD_DATE" | "ATTRIBUTION_BAD_INSTANT",
    message: string,
  ) {
    super(message);
    this.name = "AttributionError";
  }
}

/** A half-open date interval [from, until) during which the membership counts; null = unbounded. */
interface Interval {
  groupId: string;
  defaultGroup: boolean;
  from: string | null;
  until: string | null;
}

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

function assertDate(date: string): void {
  if (!DATE.test(date)) throw new AttributionError("ATTRIBUTION_BAD_DATE", `not a YYYY-MM-DD date: ${date}`);
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The calendar date (YYYY-MM-DD) of an ISO instant in `timeZone`. */
export function calendarDateIn(instant: string, timeZone: string): string {
  const ms = Date.parse(instant);
  if (Number.isNaN(ms))
    throw new AttributionError("ATTRIBUTION_BAD_INSTANT", `not an ISO instant: ${instant}`);
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
    formatters.set(timeZone, f);
  }
  let y = "";
  let m = "";
  let d = "";
  for (const p of f.formatToParts(ms)) {
    if (p.type === "year") y = p.value;
    else if (p.type === "month") m = p.value;
    else if (p.type === "day") d = p.value;
  }
  return `${y.padStart(4, "0")}-${m}-${d}`;
}

function later(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return a > b ? a : b;
}

type DateOf = (instant: string) => string;

/** calendarDateIn for one zone, memoized: the exits of one sync share a few instants. */
function dateOfIn(timeZone: string): DateOf {
  const memo = new Map<string, string>();
  return (instant) => {
    let d = memo.get(instant);
    if (d === undefined) {
      d = calendarDateIn(instant, timeZone);
      memo.set(instant, d);
    }
    return d;
  };
}

/** The intervals of one membership, oldest stint first. */
function intervalsOf(m: Membership, dateOf: DateOf): Interval[] {
  if (m.firstSeenExited) return [];
  const out: Interval[] = [];
  let floor: string | null = null;
  for (const stint of m.previousStints) {
    const until = dateOf(stint.exitSeenAt);
    out.push({ groupId: m.groupId, defaultGroup: m.defaultGroup, from: later(stint.joinedOn, floor), until });
    floor = later(floor, until);
  }
  const from = later(m.joinedOn, floor);
  if (m.active) out.push({ groupId: m.groupId, defaultGroup: m.defaultGroup, from, until: null });
  else if (m.exitSeenAt !== null) {
    out.push({
      groupId: m.groupId,
      defaultGroup: m.defaultGroup,
      from,
      until: dateOf(m.exitSeenAt),
    });
  }
  return out.filter((i) => i.from === null || i.until === null || i.from < i.until);
}

/** Numeric order of decimal id strings (as BigInt would), then text order for ties such as "09" vs "9". */
export function compareGroupIds(a: string, b: string): number {
  const za = significantFrom(a);
  const zb = significantFrom(b);
  if (za >= 0 && zb >= 0) {
    // Digits only: more significant digits is larger; as many, text order is numeric order.
    const la = a.length - za;
    const lb = b.length - zb;
    if (la !== lb) return la < lb ? -1 : 1;
    for (let i = 0; i < la; i++) {
      const d = a.charCodeAt(za + i) - b.charCodeAt(zb + i);
      if (d !== 0) return d < 0 ? -1 : 1;
    }
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first significant digit of a digit string (its length when all zeros); -1 if not digits. */
function significantFrom(s: string): number {
  if (s.length === 0) return -1;
  let first = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    if (first < 0 && c !== 48) first = i;
  }
  return first < 0 ? s.length : first;
}

/** Priority order: default group first, then numerically smallest id. The first covering interval wins. */
function byPriority(a: Interval, b: Interval): number {
  if (a.defaultGroup !== b.defaultGroup) return a.defaultGroup ? -1 : 1;
  return compareGroupIds(a.groupId, b.groupId);
}

function covers(i: Interval, date: string): boolean {
  return (i.from === null || i.from <= date) && (i.until === null || date < i.until);
}

function pick(sorted: readonly Interval[], date: string): string | null {
  for (const i of sorted) if (covers(i, date)) return i.groupId;
  return null;
}

/** The group of one user on `date`, given that user's memberships (in any group). */
export function groupOfMemberOn(
  memberships: readonly Membership[],
  date: string,
  timeZone: string,
): string | null {
  assertDate(date);
  const dateOf = dateOfIn(timeZone);
  const intervals = memberships.flatMap((m) => intervalsOf(m, dateOf));
  intervals.sort(byPriority);
  return pick(intervals, date);
}

export interface AttributionIndex {
  groupOf(userId: string, date: string): string | null;
  /** The groups the user is attributed to on at least one date from `from` to `to` (both included). */
  groupsDuring(userId: string, from: string, to: string): string[];
  /** Number of users with at least one countable interval. */
  readonly users: number;
}

/**
 * Precomputes, per user, the countable intervals in priority order, so a lookup is a short scan of a
 * user's (few) intervals with text comparisons: no date parsing or time-zone work per row.
 */
export function buildAttributionIndex(memberships: Iterable<Membership>, timeZone: string): AttributionIndex {
  const perUser = new Map<string, Interval[]>();
  const dateOf = dateOfIn(timeZone);
  for (const m of memberships) {
    const intervals = intervalsOf(m, dateOf);
    if (intervals.length === 0) continue;
    const list = perUser.get(m.userId);
    if (list) list.push(...intervals);
    else perUser.set(m.userId, intervals);
  }
  for (const list of perUser.values()) list.sort(byPriority);
  let lastUser: string | undefined;
  let lastList: Interval[] | undefined;
  /** Dates already checked (a period has a few dozen). */
  const checked = new Set<string>();
  const check = (date: string) => {
    if (checked.has(date)) return;
    assertDate(date);
    if (checked.size < 4096) checked.add(date);
  };
  return {
    users: perUser.size,
    groupOf(userId: string, date: string): string | null {
      check(date);
      // Rows come grouped by user (lib/domain/upsert.ts): the last user's list is the likely one.
      if (userId !== lastUser) {
        lastUser = userId;
        lastList = perUser.get(userId);
      }
      return lastList ? pick(lastList, date) : null;
    },
    groupsDuring(userId: string, from: string, to: string): string[] {
      check(from);
      check(to);
      const list = perUser.get(userId);
      if (!list) return [];
      // The attributed group can change only where an interval starts or ends (`until` is exclusive).
      const out: string[] = [];
      const at = (d: string | null) => {
        if (d === null || (d !== from && (d <= from || d > to))) return;
        const g = pick(list, d);
        if (g !== null && !out.includes(g)) out.push(g);
      };
      at(from);
      for (const i of list) {
        at(i.from);
        at(i.until);
      }
      return out;
    },
  };
}
