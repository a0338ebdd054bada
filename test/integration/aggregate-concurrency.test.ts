/**
 * Bursts: every sample file is ingested (three at a time) and each ingestion fires an aggregation at
 * once, as a signal would, against DynamoDB Local and the S3 emulator. Runs overlap and mostly find the
 * lock taken; when all is settled no period may be dirty, every period's current report must name every
 * file committed with rows in it, and a fresh on-demand run must publish the same figures.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { provision } from "../../infra/provision.ts";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import { LOCAL_CREDENTIALS } from "../../infra/stack.ts";
import {
  type AggregationOutcome,
  periodManifestKey,
  type ReportManifest,
  runAggregation,
} from "../../lib/aggregate.ts";
import { type IngestOutcome, ingestObject } from "../../lib/ingest.ts";
import { createRuntime } from "../../lib/runtime.ts";
import { localClients, uniqueName } from "./helpers.ts";

describe("a burst of deliveries with an aggregation fired per file", () => {
  const { stack, s3, dynamo } = localClients();
  const names = {
    exportsBucket: uniqueName("burst-exports"),
    reportsBucket: uniqueName("burst-reports"),
    tableName: uniqueName("burst-table"),
  };
  let dir: string;
  let sample: GeneratedSample;
  const outcomes: IngestOutcome[] = [];
  const runs: AggregationOutcome[] = [];
  let rt: ReturnType<typeof createRuntime>;

  const text = async (key: string) => {
    const r = await s3.send(new GetObjectCommand({ Bucket: names.reportsBucket, Key: key }));
    return (await r.Body?.transformToString("utf8")) ?? "";
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-burst-"));
    sample = await buildSample({ outDir: dir, seed: 9, months: ["2026-09", "2026-10"] });
    await provision({ s3, ddb: dynamo }, names);
    // The SDK clients take credentials from the process environment, as in Lambda.
    process.env.AWS_ACCESS_KEY_ID = LOCAL_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = LOCAL_CREDENTIALS.secretAccessKey;
    rt = createRuntime({
      AWS_REGION: stack.region,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      S3_ENDPOINT: stack.s3Endpoint,
      S3_FORCE_PATH_STYLE: "true",
      DYNAMODB_ENDPOINT: stack.dynamoEndpoint,
      EXPORTS_BUCKET: names.exportsBucket,
      REPORTS_BUCKET: names.reportsBucket,
      TABLE_NAME: names.tableName,
    });
    const quiet = { ...rt.aggregate, log: { ...rt.aggregate.log, info: () => undefined } as never };
    const keys = [...sample.manifest.files]
      .sort((a, b) => a.deliveryOrder - b.deliveryOrder)
      .map((f) => f.key);
    const aggregations: Promise<void>[] = [];
    const queue = keys[Symbol.iterator]();
    const worker = async () => {
      for (let k = queue.next(); !k.done; k = queue.next()) {
        const key = k.value;
        const body = await readFile(join(dir, ...key.split("/")));
        const put = await s3.send(
          new PutObjectCommand({ Bucket: names.exportsBucket, Key: key, Body: body }),
        );
        outcomes.push(
          await ingestObject(
            { ...rt.ingest, log: quiet.log },
            {
              bucket: names.exportsBucket,
              key,
              size: body.length,
              eTag: (put.ETag ?? "").replaceAll('"', ""),
              sequencer: String(outcomes.length).padStart(8, "0"),
              eventTime: new Date().toISOString(),
            },
          ),
        );
        // The signal: an aggregation starts now, while other files are still being ingested.
        aggregations.push(runAggregation(quiet, { dirty: true }).then((r) => void runs.push(r)));
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    await Promise.all(aggregations);
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("runs never overlapped: the lock refused some, and every run ended", () => {
    expect(runs).toHaveLength(sample.manifest.files.length);
    expect(runs.some((r) => r.status === "busy")).toBe(true);
    expect(runs.some((r) => r.published.length > 0)).toBe(true);
  });

  it("leaves no period dirty and no committed file out of its period's current report", async () => {
    const periods = await rt.aggregate.ledger.listPeriods();
    expect(periods.filter((p) => p.dirtySince !== null).map((p) => p.period)).toEqual([]);
    const committed = outcomes.filter(
      (o): o is Extract<IngestOutcome, { periods: string[] }> => o.status === "COMMITTED",
    );
    for (const period of sample.truth.months) {
      const m = JSON.parse(await text(periodManifestKey(period))) as ReportManifest;
      const want = committed.filter((o) => o.periods.includes(period)).map((o) => o.fileId);
      expect(m.inputFiles).toEqual([...want].sort());
    }
  });

  it("publishes what a fresh run over the settled data publishes", async () => {
    const before = await Promise.all(
      sample.truth.months.map(async (p) => JSON.parse(await text(periodManifestKey(p))) as ReportManifest),
    );
    const again = await runAggregation(rt.aggregate, { periods: sample.truth.months });
    expect(again.published.map((p) => p.period)).toEqual(sample.truth.months);
    for (const [i, rep] of again.published.entries()) {
      const old = before[i];
      for (const name of ["group_summary.csv", "group_members.csv", "unattributed_members.csv"]) {
        const a = old?.files.find((f) => f.name === name);
        const b = rep.files.find((f) => f.name === name);
        expect({ name, sha: b?.sha256 }).toEqual({ name, sha: a?.sha256 });
      }
    }
  });
});
