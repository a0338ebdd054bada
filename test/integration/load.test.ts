/**
 * Issue 8, load: the sample's exports split into 200 files, all uploaded at once (50 uploads in flight),
 * reach the ingest handler through the S3 event dispatcher with bounded concurrency (as Lambda's reserved
 * concurrency would bound it). Every file is ingested exactly once, no row is lost (rows read = the
 * sample's rows, read = accepted + rejected), and the reports equal the sequential delivery's (the
 * sample's truth, which the end-to-end test checks a sequential run against).
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import { provision } from "../../infra/provision.ts";
import { type S3Dispatcher, startS3Dispatcher } from "../../infra/s3-dispatcher.ts";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import type { LedgerEntry } from "../../lib/adapters/ledger-store.ts";
import {
  deliver,
  type Handlers,
  handlerEnv,
  ledgerOf,
  loadHandlers,
  SIM_CREDENTIALS,
  truthReports,
  visibleReports,
} from "../support/stack-run.ts";
import { localClients, s3ClientFor, uniqueName } from "./helpers.ts";

const FILES = 200;
const CONCURRENCY = 8;
const DUPLICATED = 20;

describe(`load: ${FILES} files at once, bounded concurrency`, () => {
  const { stack, s3, ddb, dynamo } = localClients();
  const names = {
    exportsBucket: uniqueName("load-exports"),
    reportsBucket: uniqueName("load-reports"),
    tableName: uniqueName("load-table"),
  };
  let dir: string;
  let sample: GeneratedSample;
  let dispatcher: S3Dispatcher;
  let sim: CapillarySimulator;
  let h: Handlers;
  let keys: string[] = [];
  let drained: Awaited<ReturnType<S3Dispatcher["drain"]>>;
  let running = 0;
  let peak = 0;
  let entries: LedgerEntry[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-load-"));
    sample = await buildSample({ outDir: dir, seed: 5, months: ["2026-10"], groups: 16 });
    // Keep gzip and zip files whole; split the plain CSVs into parts (header + a share of the records),
    // so that there are FILES files in all. Splitting changes no row: the reports stay the truth.
    const plain = sample.manifest.files.filter((f) => f.packaging === "csv");
    const whole = sample.manifest.files.filter((f) => f.packaging !== "csv").map((f) => f.key);
    const totalRows = plain.reduce((n, f) => n + f.rows, 0);
    const budget = FILES - whole.length;
    const parts = plain.map((f) => Math.min(f.rows, Math.max(1, Math.round((f.rows / totalRows) * budget))));
    let diff = budget - parts.reduce((a, b) => a + b, 0);
    for (let i = 0; diff !== 0; i = (i + 1) % parts.length) {
      const p = parts[i] ?? 1;
      if (diff > 0 && p < (plain[i]?.rows ?? 0)) {
        parts[i] = p + 1;
        diff--;
      } else if (p > 1) {
        parts[i] = p - 1;
        diff++;
      }
    }
    keys = [...whole];
    for (const [i, f] of plain.entries()) {
      const records = parse(await readFile(join(dir, ...f.key.split("/"))), {
        bom: true,
        skip_empty_lines: true,
        relax_column_count: true,
      }) as string[][];
      const [header = [], ...rows] = records;
      const n = parts[i] ?? 1;
      for (let p = 0; p < n; p++) {
        const chunk = rows.slice(Math.floor((p * rows.length) / n), Math.floor(((p + 1) * rows.length) / n));
        const text = [header, ...chunk]
          .map((r) => r.map((v) => (/[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v)).join(","))
          .join("\r\n");
        const key = `${f.key}-part-${String(p).padStart(3, "0")}.csv`;
        await writeFile(join(dir, ...key.split("/")), `${text}\r\n`);
        keys.push(key);
      }
    }

    const [first, second] = sample.input.syncs;
    if (!first || !second) throw new Error("the sample has two syncs");
    dispatcher = await startS3Dispatcher({
      upstream: stack.s3Endpoint,
      region: stack.region,
      concurrency: CONCURRENCY,
    });
    sim = await startCapillarySimulator({ state: first.state, credentials: SIM_CREDENTIALS });
    await provision({ s3, ddb: dynamo }, names);
    h = await loadHandlers(
      handlerEnv(stack, names, { s3: dispatcher.endpoint, dynamo: stack.dynamoEndpoint }, sim, sample, {
        STAGING_PARTITIONS: "2",
      }),
    );
    for (const st of [first.state, second.state]) {
      sim.setState(st);
      await h.sync();
    }
    dispatcher.setTarget(async (event) => {
      running++;
      peak = Math.max(peak, running);
      try {
        await h.ingest(event);
      } finally {
        running--;
      }
    });
    const upload = s3ClientFor(dispatcher.endpoint);
    // Shuffled (deterministically): the files do not arrive in delivery order either.
    // 20 of them uploaded twice at once (same bytes): two S3 events for one object version, delivered
    // concurrently, as S3's at-least-once delivery may.
    const shuffled = [...keys, ...keys.slice(0, DUPLICATED)].sort((a, b) => hash(a) - hash(b));
    drained = await deliver(upload, names.exportsBucket, dir, shuffled, dispatcher, { concurrency: 50 });
    upload.destroy();
    await h.aggregate();
    entries = await ledgerOf(ddb, names.tableName).list();
  });

  afterAll(async () => {
    await dispatcher?.stop();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`delivers ${FILES} + ${DUPLICATED} duplicate events, at most ${CONCURRENCY} invocations at a time, none failed`, () => {
    expect(keys).toHaveLength(FILES);
    expect(drained).toEqual({ delivered: FILES + DUPLICATED, failed: [] });
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(CONCURRENCY);
  });

  it("ingests every file exactly once, and loses no row", () => {
    expect(entries.map((e) => e.sourceKey).sort()).toEqual([...keys].sort());
    // One ledger entry per object version, COMMITTED. A duplicate event finds it committed (DUPLICATE),
    // or, when both events run at once, ingests the same version again into the same staged keys.
    const dup = new Set(keys.slice(0, DUPLICATED));
    expect(
      entries
        .filter((e) => e.status !== "COMMITTED" || e.attempts > (dup.has(e.sourceKey) ? 2 : 1))
        .map((e) => [e.sourceKey, e.status, e.reason, e.attempts]),
    ).toEqual([]);
    let read = 0;
    let accepted = 0;
    let rejected = 0;
    for (const e of entries)
      for (const x of e.entries) {
        read += x.rowsRead;
        accepted += x.rowsAccepted;
        rejected += x.rowsRejected;
      }
    const want = sample.truth.dataQuality.reduce(
      (s, w) => ({
        read: s.read + Number(w.rows_read),
        accepted: s.accepted + Number(w.rows_accepted),
        rejected: s.rejected + Number(w.rows_rejected),
      }),
      { read: 0, accepted: 0, rejected: 0 },
    );
    expect({ read, accepted, rejected }).toEqual(want);
    expect(read).toBe(accepted + rejected);
  });

  it("publishes the reports of a sequential delivery", async () => {
    const got = await visibleReports(s3, names.reportsBucket, sample.truth.months);
    const want = truthReports(sample);
    for (const period of sample.truth.months) {
      expect(got[period]?.summary).toEqual(want[period]?.summary);
      expect(got[period]?.unattributed).toEqual(want[period]?.unattributed);
    }
  });
});

function hash(s: string): number {
  let x = 2166136261;
  for (let i = 0; i < s.length; i++) x = Math.imul(x ^ s.charCodeAt(i), 16777619);
  return x >>> 0;
}
