import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGzip, type Gzip, constants as zc } from "node:zlib";

/**
 * Local spill files for staged output: one text sink per (dataset, period, part) and one for rejects,
 * encoded straight into fixed-size byte buffers (no per-row string concatenation), gzip level 1 where asked (DESIGN.md performance facts), so that
 * memory stays flat whatever the input size. Uploaded when the input is fully read.
 */
const FLUSH_AT = 64 * 1024;

export class SpillFile {
  /** Lines are encoded straight into this buffer; a full one is handed to the writer and replaced. */
  private chunk: Buffer = Buffer.allocUnsafeSlow(FLUSH_AT);
  private pos = 0;
  private readonly out: Gzip | WriteStream;
  private readonly file: WriteStream;
  rows = 0;
  constructor(
    readonly path: string,
    gzip: boolean,
  ) {
    this.file = createWriteStream(path);
    if (gzip) {
      // Room for a few buffers before the caller waits: compression (on the libuv pool) overlaps parsing.
      // (zlib streams take Transform options; the Node typings omit them.)
      const z = createGzip(
        Object.assign({ level: 1, strategy: zc.Z_DEFAULT_STRATEGY }, { highWaterMark: 4 * FLUSH_AT }),
      );
      z.pipe(this.file);
      this.out = z;
    } else {
      this.out = this.file;
    }
  }

  /** Append one line (without line end). Returns false when the writer wants the caller to wait (drain()). */
  line(text: string): boolean {
    this.rows++;
    let ok = true;
    // At most 3 bytes per UTF-16 unit, plus the line end.
    const need = text.length * 3 + 1;
    if (need > FLUSH_AT - this.pos) {
      ok = this.flush();
      if (need > FLUSH_AT) return this.out.write(`${text}\n`) && ok;
    }
    this.pos += this.chunk.write(text, this.pos, "utf8");
    this.chunk[this.pos++] = 10;
    return ok;
  }

  private flush(): boolean {
    if (this.pos === 0) return true;
    const full = this.chunk.subarray(0, this.pos);
    // The writer keeps the bytes until compressed or written: hand over this buffer, take a new one.
    this.chunk = Buffer.allocUnsafeSlow(FLUSH_AT);
    this.pos = 0;
    return this.out.write(full);
  }

  get needsDrain(): boolean {
    return this.out.writableNeedDrain;
  }

  drain(): Promise<void> {
    return this.out.writableNeedDrain
      ? new Promise((r) => this.out.once("drain", () => r()))
      : Promise.resolve();
  }

  async close(): Promise<void> {
    this.flush();
    await new Promise<void>((resolve, reject) => {
      this.file.once("finish", () => resolve());
      this.file.once("error", reject);
      this.out.once("error", reject);
      this.out.end();
    });
  }

  destroy(): void {
    this.out.destroy();
    this.file.destroy();
  }
}

export class SpillDir {
  private constructor(readonly dir: string) {}

  static async create(base = tmpdir()): Promise<SpillDir> {
    await mkdir(base, { recursive: true });
    return new SpillDir(await mkdtemp(join(base, "glr-")));
  }

  file(name: string, gzip: boolean): SpillFile {
    return new SpillFile(join(this.dir, name), gzip);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
