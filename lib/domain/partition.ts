/** Key-hash partition of staged rows (FNV-1a, 32 bit): the same key always lands in the same part. */
export function partOf(key: string, parts: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % parts;
}

/** Two-digit part label used in staged keys (`part=03`). */
export function partLabel(part: number): string {
  return part < 10 ? `0${part}` : String(part);
}

export function stagedKey(dataset: string, period: string, part: number, fileId: string): string {
  return `staging/${dataset}/period=${period}/part=${partLabel(part)}/${fileId}.csv.gz`;
}
