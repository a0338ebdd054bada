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
    if (locale.group !== "") s = s.split(locale.group).join("");
    if (locale.decimal !== ".") s = s.replace(locale.decimal, ".");
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

/** Format integer thousandths exactly and minimally: `-12.5`, `0`, `1234.125`. */
export function formatThousandths(v: number | bigint): string {
  const b = typeof v === "bigint" ? v : BigInt(v);
  const neg = b < 0n;
  const a = neg ? -b : b;
  const int = a / 1000n;
  const frac = a % 1000n;
  let out = int.toString();
  if (frac !== 0n) out += `.${frac.toString().padStart(3, "0").replace(/0+$/, "")}`;
  return neg ? `-${out}` : out;
}

export const decimalErrorText: Record<DecimalError, string> = {
  NOT_A_NUMBER: "not a number",
  TOO_MANY_DECIMALS: "more than 3 decimal places",
  THOUSANDS_SEPARATOR: "thousands separator not allowed (configure NUMBER_LOCALE)",
  OUT_OF_RANGE: "out of range for decimal(15,3)",
};
