/**
 * In-process implementations of the ingestion ports, for unit tests, benches and offline runs: an
 * object store over a local directory (streaming reads, IfMatch on a content ETag, 412 when the key was
 * overwritten) and an in-memory ledger. They follow the S3 and DynamoDB adapters' contracts so the use
 * case cannot tell them apart.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import type { LedgerEntry, PeriodState } from "./ledger-store.ts";
import type { ObjectBody } from "./s3-objects.ts";

interface Stored {
  path: string;
  eTag: string;
  contentEncoding: string | null;
}

/** Error shaped like the SDK's for a failed `If-Match` (HTTP 412). */
export class PreconditionFailed extends Error {
  readonly $metadata = { httpStatusCode: 412 };
  constructor(key: string) {
    super(`precondition failed for ${key}`);
    this.name = "PreconditionFailed";
  }
}

export class LocalObjects {
  private readonly objects = new Map<string, Stored>();
  /** Every body handed out by get(), to check that each was consumed to the end or destroyed. */
  readonly bodies: Readable[] = [];
  /** Keys written by putFile/put, in order. */
  readonly written: string[] = [];
  private seq = 0;
  /** When set, called before each write: a test throws from it to inject a crash. */
  beforeWrite: ((bucket: string, key: string) => void) | null = null;
  /** Size of the chunks a body is read in (1 to test records and line ends split across chunks). */
  chunkSize = 64 * 1024;
  /** When false, putFile only records the key and size (benches: no copy of the staged output). */
  keepWrites = true;

  constructor(private readonly dir: string) {}

  private pathOf(bucket: string, key: string): string {
    return join(this.dir, bucket, `${createHash("sha1").update(key).digest("hex")}-${this.seq++}`);
  }

  /** Store an object from bytes or a local file; returns its eTag (md5 of the content, like a single PUT). */
  async putObject(
    bucket: string,
    key: string,
    content: Uint8Array | { file: string },
    opts: { contentEncoding?: string } = {},
  ): Promise<string> {
    const path = this.pathOf(bucket, key);
    await mkdir(dirname(path), { recursive: true });
    let eTag: string;
    if (content instanceof Uint8Array) {
      await writeFile(path, content);
      eTag = createHash("md5").update(content).digest("hex");
    } else {
      await copyFile(content.file, path);
      const h = createHash("md5");
      for await (const c of createReadStream(path)) h.update(c as Buffer);
      eTag = h.digest("hex");
    }
    this.objects.set(`${bucket}/${key}`, { path, eTag, contentEncoding: opts.contentEncoding ?? null });
    return eTag;
  }

  /** Register an existing local file as an object, without copying it (benches: multi-GB inputs). */
  addFile(bucket: string, key: string, path: string, eTag: string): void {
    this.objects.set(`${bucket}/${key}`, { path, eTag, contentEncoding: null });
  }

  async get(bucket: string, key: string, ifMatch?: string): Promise<ObjectBody> {
    const o = this.objects.get(`${bucket}/${key}`);
    if (!o)
      throw Object.assign(new Error(`NoSuchKey ${key}`), {
        name: "NoSuchKey",
        $metadata: { httpStatusCode: 404 },
      });
    if (ifMatch && ifMatch !== o.eTag) throw new PreconditionFailed(key);
    const { size } = await stat(o.path);
    const body = createReadStream(o.path, { highWaterMark: this.chunkSize });
    this.bodies.push(body);
    return {
      body,
      destroy: () => body.destroy(),
      contentLength: size,
      contentEncoding: o.contentEncoding,
      eTag: o.eTag,
    };
  }

  async putFile(bucket: string, key: string, path: string, _contentType: string): Promise<void> {
    this.beforeWrite?.(bucket, key);
    this.written.push(key);
    if (!this.keepWrites) return;
    await this.putObject(bucket, key, { file: path });
  }

  async put(bucket: string, key: string, body: string | Uint8Array, _contentType: string): Promise<void> {
    this.beforeWrite?.(bucket, key);
    this.written.push(key);
    await this.putObject(bucket, key, typeof body === "string" ? Buffer.from(body) : body);
  }

  async readBytes(bucket: string, key: string): Promise<Buffer | null> {
    const o = this.objects.get(`${bucket}/${key}`);
    return o ? readFile(o.path) : null;
  }

  keys(bucket: string, prefix = ""): string[] {
    const out: string[] = [];
    for (const id of this.objects.keys()) {
      if (!id.startsWith(`${bucket}/`)) continue;
      const key = id.slice(bucket.length + 1);
      if (key.startsWith(prefix)) out.push(key);
    }
    return out.sort();
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export class MemoryLedger {
  readonly entries = new Map<string, LedgerEntry>();
  readonly periods = new Map<string, PeriodState>();

  async get(fileId: string): Promise<LedgerEntry | null> {
    const e = this.entries.get(fileId);
    return e ? structuredClone(e) : null;
  }

  async put(entry: LedgerEntry, opts: { unlessCommitted?: boolean } = {}): Promise<boolean> {
    if (opts.unlessCommitted && this.entries.get(entry.fileId)?.status === "COMMITTED") return false;
    this.entries.set(entry.fileId, structuredClone(entry));
    return true;
  }

  async list(): Promise<LedgerEntry[]> {
    return [...this.entries.values()].map((e) => structuredClone(e));
  }

  /** fileId of each markDirty call per period, in order (the DynamoDB store keeps them as a set). */
  readonly marks: { period: string; fileId: string | undefined }[] = [];

  async markDirty(periods: readonly string[], at: string, fileId?: string): Promise<void> {
    for (const period of periods) {
      const p = this.periods.get(period) ?? { period, dirtySince: null, lastRunId: null, lastReportAt: null };
      p.dirtySince ??= at;
      this.marks.push({ period, fileId });
      this.periods.set(period, p);
    }
  }

  async listPeriods(): Promise<PeriodState[]> {
    return [...this.periods.values()].map((p) => ({ ...p })).sort((a, b) => (a.period < b.period ? -1 : 1));
  }
}
