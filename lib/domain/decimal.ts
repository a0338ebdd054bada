/**
 * Exact decimals as integer thousandths (source type decimal(15,3)): never floating point.
 * A value of decimal(15,3) is below 10^15 thousandths, so one value fits a JS number exactly;
 * sums are kept as bigint.
 */

export type DecimalError = "NOT_A_NUMBER" | "TOO_MANY_DECIMALS" | "THOUSANDS_SEPARATOR" | "OUT_OF_RANGE";

const MAX_THOUSANDTHS = 1e15;

/**
 * Parse `text` to integer thousandths. Returns a DecimalError code on bad input. Blank input must be
 * handled by the caller (blank is never 0).
 * `thousandsSeparator`: a configured locale may allow "," (or "." with decimal ",") grouping.
 */
export function parseThousandths(
  text: string,
  locale?: { group: string; decimal: string },
): number | DecimalError {
  let s = text.trim();
  if (locale) {
    const plain = ungroup(s, locale);
    if (plain === null) return "NOT_A_NUMBER";
    s = plain;
  }
  const n = s.length;
  let i = 0;
  let neg = false;
  if (i < n && (s.charCodeAt(i) === 45 /* - */ || s.charCodeAt(i) === 43) /* + */) {
    neg = s.charCodeAt(i) === 45;
    i++;
  }
  let int = 0;
  let digits = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    int = int * 10 + c;
    digits++;
  }
  let frac = 0;
  let fracDigits = 0;
  if (i < n && s.charCodeAt(i) === 46 /* . */) {
    i++;
    for (; i < n; i++) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      if (fracDigits >= 3) {
        if (c !== 0) return "TOO_MANY_DECIMALS";
        continue; // trailing zeros beyond 3 places are exact
      }
      frac = frac * 10 + c;
      fracDigits++;
    }
  }
  if (i !== n) return s.charCodeAt(i) === 44 /* , */ && digits > 0 ? "THOUSANDS_SEPARATOR" : "NOT_A_NUMBER";
  if (digits === 0 && fracDigits === 0) return "NOT_A_NUMBER";
  while (fracDigits < 3) {
    frac *= 10;
    fracDigits++;
  }
  const v = int * 1000 + frac;
  if (!(v < MAX_THOUSANDTHS)) return "OUT_OF_RANGE";
  return neg ? -v : v;
}

/** Number locales of NUMBER_LOCALE: grouping and decimal separators. */
export const NUMBER_LOCALES = {
  en: { group: ",", decimal: "." },
  de: { group: ".", decimal: "," },
} as const satisfies Record<string, { group: string; decimal: string }>;

/**
 * A locale-formatted number (`1,234.5` in en, `1.234,5` in de) in plain form (`1234.5`), or null when the
 * grouping is not well formed (groups of 3 digits after a first group of 1 to 3; none after the decimal
 * separator): `1,5` in en or `1.5` in de is ambiguous, so it is rejected rather than guessed.
 */
function ungroup(s: string, locale: { group: string; decimal: string }): string | null {
  const d = s.indexOf(locale.decimal);
  const int = d >= 0 ? s.slice(0, d) : s;
  const frac = d >= 0 ? s.slice(d + 1) : null;
  if (frac !== null && (frac.includes(locale.group) || frac.includes(locale.decimal))) return null;
  let plainInt = int;
  if (locale.group !== "" && int.includes(locale.group)) {
    const sign = int.startsWith("-") || int.startsWith("+") ? int.slice(0, 1) : "";
    const groups = int.slice(sign.length).split(locale.group);
    const [first = "", ...rest] = groups;
    if (first.length < 1 || first.length > 3 || rest.some((g) => g.length !== 3)) return null;
    plainInt = sign + groups.join("");
  }
  return frac === null ? plainInt : `${plainInt}.${frac}`;
}

/** Format integer thousandths exactly and minimally: `-12.5`, `0`, `1234.125`. */
export function formatThousandths(v: number | bigint): string {
  // Within 2^53 the arithmetic is exact in doubles (and much cheaper than in bigints).
  const n = typeof v === "number" ? v : v <= SAFE && v >= -SAFE ? Number(v) : null;
  if (n !== null && Number.isSafeInteger(n)) {
    const a = n < 0 ? -n : n;
    const frac = a % 1000;
    let out = String((a - frac) / 1000);
    if (frac !== 0) {
      const f = frac < 10 ? `00${frac}` : frac < 100 ? `0${frac}` : String(frac);
      out += `.${f.charCodeAt(2) !== 48 ? f : f.charCodeAt(1) !== 48 ? f.slice(0, 2) : f.slice(0, 1)}`;
    }
    return n < 0 ? `-${out}` : out;
  }
  const b = typeof v === "bigint" ? v : BigInt(v);
  const neg = b < 0n;
  const a = neg ? -b : b;
  const int = a / 1000n;
  const frac = a % 1000n;
  let out = int.toString();
  if (frac !== 0n) out += `.${frac.toString().padStart(3, "0").replace(/0+$/, "")}`;
  return neg ? `-${out}` : out;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export const decimalErrorText: Record<DecimalError, string> = {
  NOT_A_NUMBER: "not a number",
  TOO_MANY_DECIMALS: "more than 3 decimal places",
  THOUSANDS_SEPARATOR: "thousands separator not allowed (configure NUMBER_LOCALE)",
  OUT_OF_RANGE: "out of range for decimal(15,3)",
};
