/** Every YYYY-MM period from `from` to `to`, inclusive. */
export function periodRange(from: string, to: string): string[] {
  if (from > to) throw new RangeError(`period range is empty: ${from} > ${to}`);
  const out: string[] = [];
  let y = Number(from.slice(0, 4));
  let m = Number(from.slice(5, 7));
  for (;;) {
    const p = `${y}-${m < 10 ? "0" : ""}${m}`;
    out.push(p);
    if (p >= to || out.length > 1200) break;
    m++;
    if (m > 12) {
      m = 1;
      y++;
    }
  }
  return out;
}
