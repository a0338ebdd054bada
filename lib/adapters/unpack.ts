import { Buffer } from "node:buffer";
import { finished, pipeline, Readable, type Transform } from "node:stream";
import * as zlib from "node:zlib";
import { createGunzip, createInflateRaw } from "node:zlib";
import {
  type AsyncFlateStreamHandler,
  Unzip,
  type UnzipDecoder,
  type UnzipDecoderConstructor,
  type UnzipFile,
} from "fflate";

/**
 * Turns a delivered export body (an S3 object stream) into CSV entry streams: a plain CSV, a gzip
 * (one or more members) or a zip with one or more CSVs. The packaging is told by magic bytes, never by
 * the object's name. Everything streams: the body is pulled only as the consumer asks for data, no
 * whole file or entry is held in memory, and expanded bytes are counted as they flow, so a
 * decompression bomb fails as soon as it crosses a limit.
 */

export type UnpackErrorCode =
  | "ZIP_BOMB"
  | "ZIP_UNSAFE_PATH"
  | "ZIP_NESTED"
  | "ZIP_CORRUPT"
  | "ZIP_ENCRYPTED"
  | "GZIP_CORRUPT"
  | "TOO_MANY_ENTRIES";

export class UnpackError extends Error {
  readonly code: UnpackErrorCode;
  /** The archive entry at fault, when there is one. */
  readonly entry?: string;

  constructor(code: UnpackErrorCode, message: string, entry?: string, cause?: unknown) {
    super(entry === undefined ? message : `${message} (entry ${JSON.stringify(entry)})`, { cause });
    this.name = "UnpackError";
    this.code = code;
    if (entry !== undefined) this.entry = entry;
  }
}

export interface UnpackLimits {
  /** Most entries (files and directories) one zip may hold. */
  maxEntries: number;
  /** Most bytes one file may expand to, all entries together. */
  maxUncompressedBytes: number;
  /** Most expanded bytes per compressed byte read (checked once more than RATIO_GRACE_BYTES expanded). */
  maxRatio: number;
}

export const defaultUnpackLimits: UnpackLimits = {
  maxEntries: 1000,
  maxUncompressedBytes: 40 * 1024 ** 3,
  maxRatio: 200,
};

/**
 * The ratio limit applies only past this many expanded bytes: a tiny archive of a repetitive CSV can
 * legitimately expand a few hundred times, and a megabyte is harmless.
 */
export const RATIO_GRACE_BYTES = 1024 * 1024;

export type Packaging = "csv" | "gzip" | "zip";

export interface ExportEntry {
  name: string;
  packaging: Packaging;
  chunks: AsyncIterable<Uint8Array>;
}

/**
 * Entries in order; the caller consumes each entry's chunks before asking for the next (whatever it
 * leaves is skipped). Directory entries, zero-length names and macOS `__MACOSX/` metadata are skipped;
 * a nested archive inside a zip or gzip fails the file with ZIP_NESTED. Errors of the body itself are
 * passed through unchanged; everything about the packaging is an UnpackError.
 */
export async function* unpack(
  body: AsyncIterable<Uint8Array>,
  opts: { name: string; limits?: UnpackLimits },
): AsyncGenerator<ExportEntry> {
  const limits = opts.limits ?? defaultUnpackLimits;
  const source = new ByteSource(body);
  try {
    const head = await source.peek(4);
    if (head.length === 0) return;
    const packaging = detectPackaging(head);
    if (packaging === "gzip") yield* gzipEntries(source, limits, opts.name);
    else if (packaging === "zip") yield* zipEntries(source, limits);
    else yield { name: opts.name, packaging: "csv", chunks: source.remaining() };
  } finally {
    await source.close();
  }
}

function detectPackaging(head: Uint8Array): Packaging {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (
    head[0] === 0x50 &&
    head[1] === 0x4b &&
    ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6))
  ) {
    return "zip";
  }
  return "csv";
}

/** True if the bytes start like an archive we would otherwise parse as CSV. */
function looksNested(head: Uint8Array): boolean {
  return detectPackaging(head) !== "csv";
}

const NESTED_NAME = /\.(zip|gz|gzip|tgz)$/i;

/** The pulled body: counts bytes, lets a peeked prefix be read again, closes the body on early exit. */
class ByteSource {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private readonly unread: Uint8Array[] = [];
  private done = false;
  /** Bytes pulled from the body so far. */
  bytesRead = 0;

  constructor(body: AsyncIterable<Uint8Array>) {
    this.iterator = body[Symbol.asyncIterator]();
  }

  async read(): Promise<Uint8Array | undefined> {
    const again = this.unread.pop();
    if (again !== undefined) return again;
    while (!this.done) {
      const r = await this.iterator.next();
      if (r.done === true) {
        this.done = true;
        break;
      }
      if (r.value.byteLength === 0) continue;
      this.bytesRead += r.value.byteLength;
      return r.value;
    }
    return undefined;
  }

  /** Puts back the unconsumed end of a chunk, to be read next. */
  unshift(chunk: Uint8Array): void {
    this.unread.push(chunk);
  }

  /** At least `n` bytes from the start of what is left (fewer at the end), without consuming them. */
  async peek(n: number): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let length = 0;
    while (length < n) {
      const c = await this.read();
      if (c === undefined) break;
      chunks.push(c);
      length += c.byteLength;
    }
    for (let i = chunks.length - 1; i >= 0; i--) this.unread.push(chunks[i] as Uint8Array);
    return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
  }

  async *remaining(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const c = await this.read();
      if (c === undefined) return;
      yield c;
    }
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.iterator.return?.();
  }
}

/** Counts expanded bytes against the limits; `compressed` tells how many input bytes were consumed. */
class BombGuard {
  private expanded = 0;

  constructor(
    private readonly limits: UnpackLimits,
    private readonly compressed: () => number,
  ) {}

  /** The error to raise if `n` more expanded bytes cross a limit, else undefined. */
  add(n: number, entry: string | undefined): UnpackError | undefined {
    this.expanded += n;
    const { maxUncompressedBytes, maxRatio } = this.limits;
    if (this.expanded > maxUncompressedBytes) {
      return new UnpackError("ZIP_BOMB", `expands to more than ${maxUncompressedBytes} bytes`, entry);
    }
    const compressed = this.compressed();
    if (this.expanded > RATIO_GRACE_BYTES && this.expanded > maxRatio * compressed) {
      return new UnpackError(
        "ZIP_BOMB",
        `expands more than ${maxRatio} times (${this.expanded} bytes from ${compressed})`,
        entry,
      );
    }
    return undefined;
  }
}

/** Reads up to `n` bytes ahead of an iterator; gives them back with the rest as one iterable. */
async function peekStream(
  it: AsyncIterator<Uint8Array>,
  n: number,
): Promise<{ head: Uint8Array; chunks: AsyncIterable<Uint8Array> }> {
  const first: Uint8Array[] = [];
  let length = 0;
  let ended = false;
  while (length < n) {
    const r = await it.next();
    if (r.done === true) {
      ended = true;
      break;
    }
    first.push(r.value);
    length += r.value.byteLength;
  }
  async function* all(): AsyncGenerator<Uint8Array> {
    yield* first;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done === true) return;
      yield r.value;
    }
  }
  return { head: Buffer.concat(first), chunks: all() };
}

// ---------------------------------------------------------------------------------------------- gzip

async function* gzipEntries(
  source: ByteSource,
  limits: UnpackLimits,
  name: string,
): AsyncGenerator<ExportEntry> {
  const entryName = name.replace(/\.(gz|gzip)$/i, "");
  const guard = new BombGuard(limits, () => source.bytesRead);
  const stream = gunzip(source, guard);
  try {
    const { head, chunks } = await peekStream(stream, 4);
    if (looksNested(head)) throw new UnpackError("ZIP_NESTED", "the gzip holds another archive", entryName);
    yield { name: entryName, packaging: "gzip", chunks };
  } finally {
    await stream.return(undefined);
  }
}

/** Expanded gzip data (all members), pulling compressed bytes only as fast as the output is read. */
async function* gunzip(source: ByteSource, guard: BombGuard): AsyncGenerator<Uint8Array> {
  const inflater = createGunzip({ chunkSize: 64 * 1024 });
  const input = Readable.from(source.remaining(), { objectMode: false });
  // Errors reach us through the iteration below; the callback only keeps them from going unhandled.
  pipeline(input, inflater, () => {});
  try {
    for await (const chunk of inflater as AsyncIterable<Buffer>) {
      const bomb = guard.add(chunk.byteLength, undefined);
      if (bomb !== undefined) throw bomb;
      yield chunk;
    }
  } catch (e) {
    if (isZlibError(e))
      throw new UnpackError("GZIP_CORRUPT", `not a valid gzip stream: ${e.message}`, undefined, e);
    throw e;
  } finally {
    inflater.destroy();
    input.destroy();
  }
}

function isZlibError(e: unknown): e is Error {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("Z_");
}

// ----------------------------------------------------------------------------------------------- zip

/** Bytes pushed into fflate at a time: bounds what one push can expand to before the guard sees it. */
const ZIP_SLICE = 16 * 1024;
/**
 * Most body bytes handed to the unzipper before its output is read: what is queued for the caller is
 * the expansion of at most this much (a larger body chunk is taken in parts).
 */
const FILL_BYTES = 256 * 1024;
const LOCAL_HEADER = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const CENTRAL_HEADER = Buffer.from([0x50, 0x4b, 0x01, 0x02]);
const END_OF_CENTRAL_DIRECTORY = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_END = 0x06064b50;
/**
 * Recent bytes kept to read each local header fflate reports (it does not expose flags) and, at the
 * end, the central directory (about 80 bytes an entry) to check every entry's CRC-32 and size.
 */
const RECENT_BYTES = 1024 * 1024;

type ZipEvent = { kind: "entry"; name: string } | { kind: "data"; chunk: Uint8Array } | { kind: "end" };

interface CentralRecord {
  name: string;
  crc: number;
  size: number;
  offset: number;
}

interface CentralDirectory {
  entries: number;
  /** Undefined when the directory did not fit in the recent bytes. */
  records: CentralRecord[] | undefined;
}

/** The last bytes pushed into the unzipper, addressed by their offset in the whole file. */
class RecentBytes {
  private slices: { offset: number; bytes: Uint8Array }[] = [];
  private head = 0;
  private total = 0;
  /** Local headers before this offset have been matched already. */
  private cursor = 0;

  add(bytes: Uint8Array): void {
    this.slices.push({ offset: this.total, bytes });
    this.total += bytes.byteLength;
    let first = this.slices[this.head];
    while (first !== undefined && this.total - (first.offset + first.bytes.byteLength) > RECENT_BYTES) {
      this.head++;
      first = this.slices[this.head];
    }
    if (this.head > 1024) {
      this.slices = this.slices.slice(this.head);
      this.head = 0;
    }
  }

  /** Bytes from offset `from` (or the oldest kept) to the end. */
  private window(from: number): { offset: number; bytes: Buffer } {
    const parts: Uint8Array[] = [];
    let start = this.total;
    for (let i = this.slices.length - 1; i >= this.head; i--) {
      const s = this.slices[i];
      if (s === undefined || s.offset + s.bytes.byteLength <= from) break;
      parts.push(s.bytes);
      start = s.offset;
    }
    const bytes = Buffer.concat(parts.reverse());
    const skip = Math.max(0, from - start);
    return { offset: start + skip, bytes: bytes.subarray(skip) };
  }

  /**
   * Flags, method and offset of the local header that fflate just reported as `name`: the first header
   * after the previous one whose name decodes the way fflate decodes it.
   */
  headerOf(name: string): { flags: number; method: number; offset: number } | undefined {
    const { offset, bytes } = this.window(this.cursor);
    for (let h = bytes.indexOf(LOCAL_HEADER); h >= 0; h = bytes.indexOf(LOCAL_HEADER, h + 1)) {
      if (h + 30 > bytes.length) break;
      const flags = bytes.readUInt16LE(h + 6);
      const nameLength = bytes.readUInt16LE(h + 26);
      if (h + 30 + nameLength > bytes.length) break;
      if (decodeName(bytes.subarray(h + 30, h + 30 + nameLength), flags) !== name) continue;
      this.cursor = offset + h + 30 + nameLength;
      return { flags, method: bytes.readUInt16LE(h + 8), offset: offset + h };
    }
    return undefined;
  }

  /** The end-of-central-directory record and, if it fits in the kept bytes, the directory itself. */
  centralDirectory(): CentralDirectory | undefined {
    const { offset: base, bytes } = this.window(0);
    const end = findEndRecord(bytes);
    if (end === undefined) return undefined;
    let entries = bytes.readUInt16LE(end + 10);
    let size = bytes.readUInt32LE(end + 12);
    let start = bytes.readUInt32LE(end + 16);
    const locator = end - 20;
    if ((entries === 0xffff || size === 0xffffffff || start === 0xffffffff) && locator >= 0) {
      if (bytes.readUInt32LE(locator) !== ZIP64_LOCATOR) return { entries, records: undefined };
      const record = Number(bytes.readBigUInt64LE(locator + 8)) - base;
      if (record < 0 || record + 56 > bytes.length || bytes.readUInt32LE(record) !== ZIP64_END) {
        return { entries, records: undefined };
      }
      entries = Number(bytes.readBigUInt64LE(record + 32));
      size = Number(bytes.readBigUInt64LE(record + 40));
      start = Number(bytes.readBigUInt64LE(record + 48));
    }
    const from = start - base;
    if (from < 0 || from + size > bytes.length) return { entries, records: undefined };
    return { entries, records: readCentralRecords(bytes.subarray(from, from + size)) };
  }
}

function decodeName(raw: Uint8Array, flags: number): string {
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString(flags & 0x800 ? "utf8" : "latin1");
}

/** Index of the end-of-central-directory record (its comment running to the end, or less). */
function findEndRecord(bytes: Buffer): number | undefined {
  const earliest = Math.max(0, bytes.length - (22 + 0xffff));
  for (let p = bytes.lastIndexOf(END_OF_CENTRAL_DIRECTORY); p >= earliest; p--) {
    p = bytes.lastIndexOf(END_OF_CENTRAL_DIRECTORY, p);
    if (p < earliest) break;
    if (p + 22 <= bytes.length && p + 22 + bytes.readUInt16LE(p + 20) <= bytes.length) return p;
  }
  return undefined;
}

function readCentralRecords(cd: Buffer): CentralRecord[] | undefined {
  const records: CentralRecord[] = [];
  let p = 0;
  while (p + 46 <= cd.length) {
    if (cd.indexOf(CENTRAL_HEADER, p) !== p) return undefined;
    const flags = cd.readUInt16LE(p + 8);
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    const next = p + 46 + nameLength + extraLength + commentLength;
    if (next > cd.length) return undefined;
    let size = cd.readUInt32LE(p + 24);
    let offset = cd.readUInt32LE(p + 42);
    // Zip64 extra field: 8-byte values for the 32-bit fields that hold 0xffffffff, in this order.
    const extra = cd.subarray(p + 46 + nameLength, p + 46 + nameLength + extraLength);
    for (let e = 0; e + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(e);
      const length = extra.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        const read64 = () => {
          const v = q + 8 <= e + 4 + length && q + 8 <= extra.length ? Number(extra.readBigUInt64LE(q)) : -1;
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = read64();
        if (cd.readUInt32LE(p + 20) === 0xffffffff) read64();
        if (offset === 0xffffffff) offset = read64();
      }
      e += 4 + length;
    }
    records.push({
      name: decodeName(cd.subarray(p + 46, p + 46 + nameLength), flags),
      crc: cd.readUInt32LE(p + 16),
      size,
      offset,
    });
    p = next;
  }
  return records;
}

function isUnsafePath(name: string): boolean {
  if (name.includes("\\") || name.includes("\0")) return true;
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) return true;
  return name.split("/").some((segment) => segment === "..");
}

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
let crcTable: Uint32Array | undefined;

/** CRC-32 as zip uses it; node:zlib's when present (Node >= 20.15), else a table-driven one. */
function crc32(data: Uint8Array, value: number): number {
  if (nativeCrc32 !== undefined) return nativeCrc32(data, value);
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~value;
  for (let i = 0; i < data.length; i++) c = (crcTable[(c ^ (data[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  return ~c >>> 0;
}

/** One entry's expanded data as it arrives, and what is needed to check it at the end. */
interface EntryState {
  name: string;
  /** Offset of its local header, when found. */
  offset: number | undefined;
  /** Queued for the caller; false for skipped entries (directories, metadata). */
  delivered: boolean;
  announced: boolean;
  chunks: Uint8Array[];
  ended: boolean;
  crc: number;
  size: number;
}

/**
 * Drives fflate's streaming `Unzip` (which needs no random access and follows data descriptors) one
 * body chunk at a time, and turns its callbacks into events read in order. Each entry queues its own
 * data: fflate may report the next entry before the last data of the previous one (a data descriptor
 * without its optional signature). fflate checks no CRC, so each entry's CRC-32 and size are checked
 * against the central directory at the end: ZIP_CORRUPT then, if anything disagrees.
 *
 * Deflated data is expanded by node:zlib instead of fflate's `UnzipInflate`: measured on a Points-like
 * CSV, ~190 MB/s out instead of ~65 (~125 with data descriptors, where fflate's signature scan
 * dominates), and on the libuv thread pool, beside the CSV parsing rather than before it. zlib works
 * asynchronously, so `next` waits for the decoders' pending work before it pulls more of the body.
 */
class ZipReader {
  private readonly unzip: Unzip;
  private readonly recent = new RecentBytes();
  private readonly guard: BombGuard;
  private readonly all: EntryState[] = [];
  private readonly queue: EntryState[] = [];
  private readonly decoders = new Set<Transform>();
  private failure: UnpackError | undefined;
  /** The body is exhausted (and fflate told so). */
  private drained = false;
  /** The end-of-archive checks ran. */
  private checked = false;
  private pushed = 0;
  /** Entries started whose last data has not arrived yet. */
  private unfinished = 0;
  /** zlib operations in flight (writes not yet processed, ends not yet finished). */
  private busy = 0;
  private wake: (() => void) | undefined;
  /** Name of the entry most recently reported, for error messages. */
  private latest: string | undefined;

  constructor(
    private readonly source: ByteSource,
    private readonly limits: UnpackLimits,
  ) {
    this.guard = new BombGuard(limits, () => this.pushed);
    this.unzip = new Unzip((file) => this.onFile(file));
    this.unzip.register(this.zlibInflate());
  }

  /** The next event, or undefined after the last entry. Throws the first error found. */
  async next(): Promise<ZipEvent | undefined> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const q = this.queue[0];
      if (q !== undefined) {
        if (!q.announced) {
          q.announced = true;
          return { kind: "entry", name: q.name };
        }
        const chunk = q.chunks.shift();
        if (chunk !== undefined) return { kind: "data", chunk };
        if (q.ended) {
          this.queue.shift();
          return { kind: "end" };
        }
      }
      if (this.busy > 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      } else if (!this.drained) {
        await this.fill();
      } else if (!this.checked) {
        this.checked = true;
        this.finish();
      } else {
        return undefined;
      }
    }
  }

  /** Stops any decoder still running (the caller gave up early). */
  close(): void {
    for (const d of this.decoders) d.destroy();
    this.decoders.clear();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private fail(error: UnpackError): void {
    this.failure ??= error;
    this.notify();
  }

  /** A fflate decoder class for deflate that hands the work to a node:zlib raw inflate stream. */
  private zlibInflate(): UnzipDecoderConstructor {
    const reader = this;
    return class ZlibInflate implements UnzipDecoder {
      static readonly compression = 8;
      ondata: AsyncFlateStreamHandler = () => {};
      private readonly inflater = createInflateRaw({ chunkSize: 64 * 1024 });
      /** This decoder's share of `reader.busy`. */
      private pending = 0;

      constructor(private readonly entry: string) {
        reader.decoders.add(this.inflater);
        this.inflater.on("data", (data: Buffer<ArrayBuffer>) => {
          this.ondata(null, data, false);
          reader.notify();
        });
        this.inflater.on("error", (err) => this.failed(err));
        // A destroyed stream may never call back its pending writes: count them done.
        this.inflater.on("close", () => {
          reader.decoders.delete(this.inflater);
          while (this.pending > 0) this.done();
          reader.notify();
        });
      }

      push(chunk: Uint8Array, final: boolean): void {
        if (chunk.byteLength > 0) {
          this.begin();
          this.inflater.write(chunk, (err) => {
            this.done();
            if (err) this.failed(err);
            reader.notify();
          });
        }
        if (final) {
          this.begin();
          this.inflater.end();
          finished(this.inflater, (err) => {
            this.done();
            if (err) this.failed(err);
            else this.ondata(null, new Uint8Array(0), true);
            reader.notify();
          });
        }
      }

      terminate(): void {
        this.inflater.destroy();
      }

      private begin(): void {
        this.pending++;
        reader.busy++;
      }

      private done(): void {
        if (this.pending === 0) return;
        this.pending--;
        reader.busy--;
      }

      private failed(err: Error): void {
        reader.fail(new UnpackError("ZIP_CORRUPT", `entry data is damaged: ${err.message}`, this.entry, err));
      }
    };
  }

  private async fill(): Promise<void> {
    let chunk = await this.source.read();
    if (chunk !== undefined && chunk.byteLength > FILL_BYTES) {
      this.source.unshift(chunk.subarray(FILL_BYTES));
      chunk = chunk.subarray(0, FILL_BYTES);
    }
    if (chunk === undefined) {
      this.drained = true;
      try {
        this.unzip.push(new Uint8Array(0), true);
      } catch (e) {
        this.fail(
          new UnpackError("ZIP_CORRUPT", `the zip ends inside an entry: ${describe(e)}`, this.latest, e),
        );
      }
      return;
    }
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let off = 0;
    let cd = -1;
    while (off < bytes.length && this.failure === undefined) {
      // A central directory signature starts a push of its own: fflate then ends an entry whose data
      // descriptor has no signature correctly (within one push it would drop its last 4 bytes).
      if (cd >= 0 && cd <= off) cd = -1;
      if (cd < 0) {
        cd = bytes.indexOf(CENTRAL_HEADER, off + 1);
        if (cd < 0) cd = bytes.length;
      }
      const end = Math.min(off + ZIP_SLICE, cd);
      this.push(bytes.subarray(off, end));
      off = end;
    }
  }

  private push(slice: Uint8Array): void {
    this.recent.add(slice);
    this.pushed += slice.byteLength;
    try {
      this.unzip.push(slice, false);
    } catch (e) {
      this.fail(new UnpackError("ZIP_CORRUPT", `not a valid zip: ${describe(e)}`, this.latest, e));
    }
  }

  /** End-of-archive checks, once the body is read and every decoder is done. */
  private finish(): void {
    if (this.unfinished > 0) {
      this.fail(new UnpackError("ZIP_CORRUPT", "the zip ends inside an entry", this.latest));
      return;
    }
    const directory = this.recent.centralDirectory();
    if (directory === undefined) {
      this.fail(new UnpackError("ZIP_CORRUPT", "no end of central directory: the zip is truncated"));
      return;
    }
    if (directory.entries !== this.all.length) {
      this.fail(
        new UnpackError(
          "ZIP_CORRUPT",
          `the zip lists ${directory.entries} entries but holds ${this.all.length}`,
        ),
      );
      return;
    }
    if (directory.records !== undefined) this.check(directory.records);
  }

  /** Every delivered entry must match its central directory record (by header offset, else name). */
  private check(records: CentralRecord[]): void {
    const byOffset = new Map(records.map((r) => [r.offset, r]));
    for (const e of this.all) {
      if (!e.delivered) continue;
      const r =
        (e.offset !== undefined ? byOffset.get(e.offset) : undefined) ??
        records.find((x) => x.name === e.name);
      if (r === undefined) {
        this.fail(new UnpackError("ZIP_CORRUPT", "entry missing from the central directory", e.name));
      } else if (r.crc !== e.crc || r.size !== e.size) {
        this.fail(new UnpackError("ZIP_CORRUPT", "entry data does not match its CRC-32 or size", e.name));
      }
      if (this.failure !== undefined) return;
    }
  }

  private onFile(file: UnzipFile): void {
    if (this.failure !== undefined) return;
    const name = file.name;
    this.latest = name;
    if (this.all.length >= this.limits.maxEntries) {
      this.fail(
        new UnpackError("TOO_MANY_ENTRIES", `the zip holds more than ${this.limits.maxEntries} entries`),
      );
      return;
    }
    if (isUnsafePath(name)) {
      this.fail(new UnpackError("ZIP_UNSAFE_PATH", "entry name escapes the archive", name));
      return;
    }
    const header = this.recent.headerOf(name);
    const method = header?.method ?? file.compression;
    // Flag bit 0: encrypted; bit 6: strong encryption; method 99: AES.
    if ((header !== undefined && (header.flags & 0x41) !== 0) || method === 99) {
      this.fail(new UnpackError("ZIP_ENCRYPTED", "entry is encrypted (password-protected zip)", name));
      return;
    }
    const skipped = name === "" || name.endsWith("/") || name.startsWith("__MACOSX/");
    if (!skipped && NESTED_NAME.test(name)) {
      this.fail(new UnpackError("ZIP_NESTED", "entry is itself an archive", name));
      return;
    }
    if (method !== 0 && method !== 8) {
      this.fail(new UnpackError("ZIP_CORRUPT", `unsupported compression method ${method}`, name));
      return;
    }
    if (file.originalSize !== undefined && file.originalSize > this.limits.maxUncompressedBytes) {
      this.fail(new UnpackError("ZIP_BOMB", `declares ${file.originalSize} bytes expanded`, name));
      return;
    }
    const entry: EntryState = {
      name,
      offset: header?.offset,
      delivered: !skipped,
      announced: false,
      chunks: [],
      ended: false,
      crc: 0,
      size: 0,
    };
    this.all.push(entry);
    if (entry.delivered) this.queue.push(entry);
    this.unfinished++;
    // A skipped entry is still started, its data discarded: fflate would otherwise buffer it.
    file.ondata = (err, data, final) => {
      if (this.failure !== undefined) return;
      if (err !== null) {
        this.fail(new UnpackError("ZIP_CORRUPT", `entry data is damaged: ${err.message}`, name, err));
        return;
      }
      if (data.byteLength > 0) {
        const bomb = this.guard.add(data.byteLength, name);
        if (bomb !== undefined) {
          this.fail(bomb);
          file.terminate();
          return;
        }
        if (entry.delivered) {
          entry.crc = crc32(data, entry.crc);
          entry.size += data.byteLength;
          entry.chunks.push(data);
        }
      }
      if (final) {
        entry.ended = true;
        this.unfinished--;
      }
    };
    file.start();
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function* zipEntries(source: ByteSource, limits: UnpackLimits): AsyncGenerator<ExportEntry> {
  const reader = new ZipReader(source, limits);
  let current = 0;
  try {
    for (;;) {
      // Skip whatever the caller left of the previous entry.
      let event = await reader.next();
      while (event !== undefined && event.kind !== "entry") event = await reader.next();
      if (event === undefined) return;
      const name = event.name;
      const id = ++current;
      const { head, chunks } = await peekStream(
        entryData(reader, () => current === id),
        4,
      );
      if (looksNested(head)) throw new UnpackError("ZIP_NESTED", "entry is itself an archive", name);
      yield { name, packaging: "zip", chunks };
    }
  } finally {
    reader.close();
  }
}

/** The data of the current entry, up to its end; nothing once the caller has moved on. */
async function* entryData(reader: ZipReader, isCurrent: () => boolean): AsyncGenerator<Uint8Array> {
  while (isCurrent()) {
    const event = await reader.next();
    if (event === undefined || event.kind === "end") return;
    if (event.kind === "data") yield event.chunk;
  }
}
