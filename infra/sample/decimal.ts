/** Exact decimals as integer thousandths (bigint): the source type is decimal(15,3). */

/** Minimal text: `-12.5`, `0`, `1234.125`; no trailing zeros, no exponent, no separators. */
export function formatThousandths(v: bigint): string {
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const int = abs / 1000n;
  const frac = (abs % 1000n).toString().padStart(3, "0").replace(/0+$/, "");
  const body = frac === "" ? int.toString() : `${int}.${frac}`;
  return neg && abs !== 0n ? `-${body}` : body;
}

/** Fixed number of places (0-3); the value must be exactly representable with them. */
export function formatFixed(v: bigint, places: 0 | 1 | 2 | 3): string {
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const int = abs / 1000n;
  const frac = (abs % 1000n).toString().padStart(3, "0");
  if (frac.slice(places).replace(/0/g, "") !== "") throw new Error(`${v} needs more than ${places} places`);
  const body = places === 0 ? int.toString() : `${int}.${frac.slice(0, places)}`;
  return neg ? `-${body}` : body;
}

/** Places needed to write v exactly. */
export function placesNeeded(v: bigint): 0 | 1 | 2 | 3 {
  const frac = (v < 0n ? -v : v) % 1000n;
  if (frac === 0n) return 0;
  if (frac % 100n === 0n) return 1;
  if (frac % 10n === 0n) return 2;
  return 3;
}

/** Sum of thousandths. */
export function sum(values: Iterable<bigint>): bigint {
  let total = 0n;
  for (const v of values) total += v;
  return total;
}
