/**
 * The ingest use case through its in-process ports (file-backed objects, in-memory ledger), and what the
 * aggregation would count of it: the newest committed file per key, then the newest row version per row
 * key (`effective()`). Two deliveries that give the same effective rows give the same reports.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { LocalObjects, MemoryLedger } from "../../lib/adapters/local-ports.ts";
import { currentFiles } from "../../lib/aggregate.ts";
import { ZonedCalendar } from "../../lib/domain/dates.ts";
import { splitCsvLine, versionColumn } from "../../lib/domain/normalize.ts";
import { Upserter } from "../../lib/domain/upsert.ts";
import {
  type DeliveredObject,
  type IngestDeps,
  type IngestSettings,
  ingestObject,
} from "../../lib/ingest.ts";
import type { Log } from "../../lib/logger.ts";

export const BUCKET = "exports-bucket";

export class IngestHarness {
  private seq = 0;
  readonly logs: { level: string; message: string; data: Record<string, unknown> }[] = [];
  readonly log: Log = {
    info: (message, data = {}) => this.logs.push({ level: "info", message, data }),
    warn: (message, data = {}) => this.logs.push({ level: "warn", message, data }),
  };
  readonly ledger = new MemoryLedger();
  readonly objects: LocalObjects;
  readonly settings: IngestSettings;

  private constructor(
    readonly dir: string,
    private readonly now: () => Date,
  ) {
    this.objects = new LocalObjects(join(dir, "s3"));
    this.settings = {
      stagingBucket: BUCKET,
      partitions: 4,
      calendar: new ZonedCalendar("UTC"),
      columnMap: {},
      maxFieldBytes: 64 * 1024,
      maxRecordBytes: 1024 * 1024,
      tmpDir: join(dir, "spill"),
    };
  }

  /** `now`: the clock the use case sees (default: the real one). */
  static async create(opts: { now?: () => Date } = {}): Promise<IngestHarness> {
    return new IngestHarness(await mkdtemp(join(tmpdir(), "glr-ingest-")), opts.now ?? (() => new Date()));
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Store an object and return the event S3 would send for it (sequencers grow with each write). */
  async put(
    key: string,
    content: Uint8Array,
    opts: { contentEncoding?: string } = {},
  ): Promise<DeliveredObject> {
    const eTag = await this.objects.putObject(BUCKET, key, content, opts);
    this.seq++;
    return {
      bucket: BUCKET,
      key,
      size: content.byteLength,
      eTag,
      sequencer: this.seq.toString(16).toUpperCase().padStart(16, "0"),
      eventTime: new Date(Date.UTC(2024, 3, 1, 0, this.seq)).toISOString(),
    };
  }

  get deps(): IngestDeps {
    return {
      objects: this.objects,
      ledger: this.ledger,
      settings: this.settings,
      now: this.now,
      log: this.log,
    };
  }

  ingest(obj: DeliveredObject) {
    return ingestObject(this.deps, obj);
  }

  async effective(): Promise<Record<string, string[]>> {
    const files = currentFiles(await this.ledger.list());
    const ups = new Map<string, Upserter>();
    for (const f of files) {
      for (const s of f.staged) {
        const bytes = await this.objects.readBytes(BUCKET, s.key);
        if (!bytes) throw new Error(`staged object missing: ${s.key}`);
        const [, ...lines] = gunzipSync(bytes)
          .toString("utf8")
          .split("\n")
          .filter((l) => l !== "");
        const vIdx = versionColumn(s.dataset);
        const up = ups.get(s.dataset) ?? new Upserter();
        ups.set(s.dataset, up);
        for (const line of stagedRecords(lines)) {
          const row = splitCsvLine(line);
          up.add(row[0] ?? "", Number(row[vIdx]), Date.parse(f.deliveredAt), f.fileId, [
            `${s.period}|${line}`,
          ]);
        }
      }
    }
    const out: Record<string, string[]> = {};
    for (const [dataset, up] of ups) out[dataset] = [...up.values()].map((r) => r[0] ?? "").sort();
    return out;
  }

  async rejectsOf(fileId: string): Promise<string | null> {
    const b = await this.objects.readBytes(BUCKET, `rejects/${fileId}.csv`);
    return b ? b.toString("utf8") : null;
  }

  /** Every GetObject body was read to its end or destroyed. */
  bodiesReleased(): boolean {
    return this.objects.bodies.every((b) => b.destroyed || b.readableEnded);
  }
}

/** Staged lines are CSV records; a quoted field may hold a line end, so join lines inside quotes. */
function stagedRecords(lines: string[]): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  for (const l of lines) {
    cur = cur === null ? l : `${cur}\n${l}`;
    if ((cur.split('"').length - 1) % 2 === 0) {
      out.push(cur);
      cur = null;
    }
  }
  return out;
}
