/**
 * Streaming CSV output: RFC 4180 fields, LF or CRLF, optional BOM, into a plain file, a gzip file, or
 * an entry of a zip (fflate, streamed). Buffers ~64 KB and honours backpressure.
 */
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { finished } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { Zip, ZipDeflate } from "fflate";

export interface ChunkTarget {
  write(chunk: string): Promise<void>;
  end(): Promise<void>;
}

export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

async function writeTo(stream: NodeJS.WritableStream, chunk: string | Uint8Array): Promise<void> {
  if (!stream.write(chunk)) await once(stream, "drain");
}

async function openFile(path: string): Promise<WriteStream> {
  await mkdir(dirname(path), { recursive: true });
  return createWriteStream(path);
}

export async function fileTarget(path: string, gzip: boolean): Promise<ChunkTarget> {
  const file = await openFile(path);
  if (!gzip) {
    return {
      write: (chunk) => writeTo(file, chunk),
      end: async () => {
        file.end();
        await finished(file);
      },
    };
  }
  const gz = createGzip({ level: 6 });
  gz.pipe(file);
  return {
    write: (chunk) => writeTo(gz, chunk),
    end: async () => {
      gz.end();
      await finished(file);
    },
  };
}

/** A zip file written as a stream; add entries one after another. */
export class ZipTarget {
  private readonly zip: Zip;
  private failure: Error | null = null;
  private done = false;
  private pending: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: WriteStream,
    private readonly mtime: Date,
  ) {
    this.zip = new Zip((err, data, final) => {
      if (err) {
        this.failure = err;
        return;
      }
      this.pending = this.pending.then(() => writeTo(file, data));
      if (final) this.done = true;
    });
  }

  /** `mtime` is stored as local DOS time by fflate: shift it so the bytes do not depend on the TZ. */
  static async open(path: string, mtimeUtcMs: number): Promise<ZipTarget> {
    const local = new Date(mtimeUtcMs);
    const shifted = new Date(mtimeUtcMs + local.getTimezoneOffset() * 60_000);
    return new ZipTarget(await openFile(path), shifted);
  }

  entry(name: string): ChunkTarget {
    const entry = new ZipDeflate(name, { level: 6 });
    entry.mtime = this.mtime;
    this.zip.add(entry);
    const encoder = new TextEncoder();
    return {
      write: async (chunk) => {
        entry.push(encoder.encode(chunk), false);
        await this.pending;
      },
      end: async () => {
        entry.push(new Uint8Array(0), true);
        await this.pending;
      },
    };
  }

  async end(): Promise<void> {
    this.zip.end();
    await this.pending;
    if (this.failure) throw this.failure;
    if (!this.done) throw new Error("zip did not finish");
    this.file.end();
    await finished(this.file);
  }
}

/** Writes records; counts data records and physical lines (for reject line numbers). */
export class CsvSink {
  private buffer: string[] = [];
  private size = 0;
  /** Data records written (the header excluded). */
  records = 0;
  /** The physical line the next record starts on (1 = the header). */
  nextLine = 1;

  constructor(
    private readonly target: ChunkTarget,
    private readonly eol: "\n" | "\r\n",
    bom: boolean,
  ) {
    if (bom) this.push("\uFEFF");
  }

  private push(s: string): void {
    this.buffer.push(s);
    this.size += s.length;
  }

  async header(columns: readonly string[]): Promise<void> {
    this.push(columns.map(csvField).join(",") + this.eol);
    this.nextLine = 2;
  }

  /** Returns the line the record starts on. */
  async record(fields: readonly string[]): Promise<number> {
    const line = this.nextLine;
    const text = fields.map(csvField).join(",");
    this.push(text + this.eol);
    this.records++;
    this.nextLine += 1 + (text.match(/\r\n|\n|\r/g)?.length ?? 0);
    if (this.size >= 65_536) await this.flush();
    return line;
  }

  /** An empty line: not a record. */
  blankLine(): void {
    this.push(this.eol);
    this.nextLine++;
  }

  private async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const chunk = this.buffer.join("");
    this.buffer = [];
    this.size = 0;
    await this.target.write(chunk);
  }

  /** `noFinalEol`: the last record ends without a line break (seen in hand-edited exports). */
  async end(noFinalEol = false): Promise<void> {
    if (noFinalEol) {
      const last = this.buffer.pop();
      if (last !== undefined)
        this.buffer.push(last.endsWith(this.eol) ? last.slice(0, -this.eol.length) : last);
    }
    await this.flush();
    await this.target.end();
  }
}
