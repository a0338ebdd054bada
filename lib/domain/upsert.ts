/**
 * The upsert of staged rows (DESIGN.md invariant 2): of every version of a key, the newest wins: the
 * higher row version, then the later delivery, then the larger file id (deterministic).
 */

/** Whether version (v, at, file) replaces the kept one (kv, kat, kfile). */
export function isNewer(
  v: number,
  at: number,
  file: string,
  kv: number,
  kat: number,
  kfile: string,
): boolean {
  return v > kv || (v === kv && (at > kat || (at === kat && file > kfile)));
}

/**
 * Keeps the newest version of each key with any value. `onSameKey` sees every further version of a key
 * next to the one kept so far.
 */
export class Upserter<T = string[]> {
  private readonly rows = new Map<
    string,
    { version: number; deliveredAt: number; fileId: string; values: T }
  >();
  constructor(private readonly onSameKey?: (kept: T, other: T) => void) {}
  add(key: string, version: number, deliveredAt: number, fileId: string, values: T): void {
    const cur = this.rows.get(key);
    if (cur !== undefined) this.onSameKey?.(cur.values, values);
    if (
      cur === undefined ||
      isNewer(version, deliveredAt, fileId, cur.version, cur.deliveredAt, cur.fileId)
    ) {
      this.rows.set(key, { version, deliveredAt, fileId, values });
    }
  }
  *values(): IterableIterator<T> {
    for (const r of this.rows.values()) yield r.values;
  }
  get size(): number {
    return this.rows.size;
  }
}

const LIMIT = 2 ** 52;

/**
 * The upsert of the rows the aggregation sums, kept as columns of numbers: per key a user, an event date
 * (both interned: one string per distinct value), two integer-thousandths amounts and a kind code
 * (PeriodAggregator's row facts). No object or string per row but the key: about 100 bytes a row with
 * the key's map entry, and little work for the garbage collector. An amount beyond 2^52 is kept exactly,
 * aside.
 */
export class StagedRows {
  /** Open addressing over the keys: bucket -> slot + 1 (0: empty); a bucket per two rows at most. */
  private buckets: Int32Array;
  private readonly keys: string[] = [];
  private hashes: Int32Array;
  private version: Float64Array;
  private deliveredAt: Float64Array;
  private a: Float64Array;
  private b: Float64Array;
  private fileIdx: Int32Array;
  private userIdx: Int32Array;
  private dateIdx: Int32Array;
  private kind: Uint8Array;
  /** Amounts beyond 2^52 by 2 * slot (+1 for b); their column holds NaN. */
  private readonly big = new Map<number, bigint>();
  private readonly fileOf = new Map<string, number>();
  private readonly userOf = new Map<string, number>();
  private readonly dateOf = new Map<string, number>();
  private readonly files: string[] = [];
  private lastFile = "";
  private lastFileIdx = -1;
  /** The distinct users and event dates, in order of first appearance. */
  readonly users: string[] = [];
  readonly dates: string[] = [];

  /**
   * `onSameKey` sees the event date kept so far and that of every further version of a key. `capacity`:
   * the rows expected (the columns double when it is exceeded).
   */
  constructor(
    private readonly onSameKey?: (keptDate: string, otherDate: string) => void,
    capacity = 1024,
  ) {
    const n = Math.max(16, capacity);
    this.buckets = new Int32Array(2 ** Math.ceil(Math.log2(2 * n)));
    this.hashes = new Int32Array(n);
    this.version = new Float64Array(n);
    this.deliveredAt = new Float64Array(n);
    this.a = new Float64Array(n);
    this.b = new Float64Array(n);
    this.fileIdx = new Int32Array(n);
    this.userIdx = new Int32Array(n);
    this.dateIdx = new Int32Array(n);
    this.kind = new Uint8Array(n);
  }

  get size(): number {
    return this.keys.length;
  }

  add(
    key: string,
    version: number,
    deliveredAt: number,
    fileId: string,
    user: string,
    date: string,
    a: number | bigint,
    b: number | bigint,
    kind: number,
  ): void {
    const h = hashOf(key);
    const mask = this.buckets.length - 1;
    let at = h & mask;
    let s = -1;
    for (let v = this.buckets[at] as number; v !== 0; v = this.buckets[at] as number) {
      if (this.hashes[v - 1] === h && this.keys[v - 1] === key) {
        s = v - 1;
        break;
      }
      at = (at + 1) & mask;
    }
    if (s < 0) {
      s = this.keys.length;
      if (s === this.version.length) this.grow();
      this.keys.push(key);
      this.hashes[s] = h;
      this.buckets[at] = s + 1;
      if (2 * this.keys.length > this.buckets.length) this.rehash();
    } else {
      this.onSameKey?.(this.dates[this.dateIdx[s] as number] as string, date);
      const kept = this.files[this.fileIdx[s] as number] as string;
      if (
        !isNewer(version, deliveredAt, fileId, this.version[s] as number, this.deliveredAt[s] as number, kept)
      )
        return;
    }
    if (fileId !== this.lastFile || this.lastFileIdx < 0) {
      this.lastFile = fileId;
      this.lastFileIdx = intern(this.fileOf, this.files, fileId);
    }
    this.version[s] = version;
    this.deliveredAt[s] = deliveredAt;
    this.fileIdx[s] = this.lastFileIdx;
    this.userIdx[s] = intern(this.userOf, this.users, user);
    this.dateIdx[s] = intern(this.dateOf, this.dates, date);
    this.a[s] = this.amount(2 * s, a);
    this.b[s] = this.amount(2 * s + 1, b);
    this.kind[s] = kind;
  }

  /**
   * Every kept row: its user, the index of its event date in `dates`, amounts and kind; the rows of one
   * user one after another (so per-user lookups downstream hit their last entry).
   */
  forEach(
    fn: (user: string, dateIdx: number, a: number | bigint, b: number | bigint, kind: number) => void,
  ): void {
    const n = this.keys.length;
    // A counting sort of the slots by user.
    const start = new Int32Array(this.users.length + 1);
    for (let s = 0; s < n; s++) {
      const u = (this.userIdx[s] as number) + 1;
      start[u] = (start[u] as number) + 1;
    }
    for (let u = 1; u < start.length; u++) start[u] = (start[u] as number) + (start[u - 1] as number);
    const order = new Int32Array(n);
    for (let s = 0; s < n; s++) {
      const u = this.userIdx[s] as number;
      const at = start[u] as number;
      order[at] = s;
      start[u] = at + 1;
    }
    const big = this.big.size > 0;
    for (let i = 0; i < n; i++) {
      const s = order[i] as number;
      const a = this.a[s] as number;
      const b = this.b[s] as number;
      fn(
        this.users[this.userIdx[s] as number] as string,
        this.dateIdx[s] as number,
        big && Number.isNaN(a) ? (this.big.get(2 * s) as bigint) : a,
        big && Number.isNaN(b) ? (this.big.get(2 * s + 1) as bigint) : b,
        this.kind[s] as number,
      );
    }
  }

  private grow(): void {
    const n = this.version.length * 2;
    this.version = grown(this.version, new Float64Array(n));
    this.deliveredAt = grown(this.deliveredAt, new Float64Array(n));
    this.a = grown(this.a, new Float64Array(n));
    this.b = grown(this.b, new Float64Array(n));
    this.fileIdx = grown(this.fileIdx, new Int32Array(n));
    this.userIdx = grown(this.userIdx, new Int32Array(n));
    this.dateIdx = grown(this.dateIdx, new Int32Array(n));
    this.kind = grown(this.kind, new Uint8Array(n));
    this.hashes = grown(this.hashes, new Int32Array(n));
  }

  private rehash(): void {
    const buckets = new Int32Array(this.buckets.length * 2);
    const mask = buckets.length - 1;
    for (let s = 0; s < this.keys.length; s++) {
      let at = (this.hashes[s] as number) & mask;
      while (buckets[at] !== 0) at = (at + 1) & mask;
      buckets[at] = s + 1;
    }
    this.buckets = buckets;
  }

  private amount(at: number, v: number | bigint): number {
    if (typeof v === "number" && v <= LIMIT && v >= -LIMIT) {
      if (this.big.size > 0) this.big.delete(at);
      return v;
    }
    this.big.set(at, BigInt(v));
    return Number.NaN;
  }
}

function grown<T extends Float64Array | Int32Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/** FNV-1a over the UTF-16 code units, mixed (keys are mostly digits: the low bits must differ). */
function hashOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

function intern(index: Map<string, number>, values: string[], v: string): number {
  let i = index.get(v);
  if (i === undefined) {
    i = values.length;
    values.push(v);
    index.set(v, i);
  }
  return i;
}
