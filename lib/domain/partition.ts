/** FNV-1a, 32 bit, of a row key. */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Key-hash partition of staged rows: the same key always lands in the same part. */
export function partOf(key: string, parts: number): number {
  return keyHash(key) % parts;
}

/**
 * Which of `slices` passes over a part (of `parts`) holds the key: the hash's next digits in base
 * `parts`, so the slices split a part evenly and independently of which part it is.
 */
export function sliceOf(key: string, parts: number, slices: number): number {
  return Math.floor(keyHash(key) / parts) % slices;
}

/** Two-digit part label used in staged keys (`part=03`). */
export function partLabel(part: number): string {
  return part < 10 ? `0${part}` : String(part);
}

export function stagedKey(dataset: string, period: string, part: number, fileId: string): string {
  return `staging/${dataset}/period=${period}/part=${partLabel(part)}/${fileId}.csv.gz`;
}
