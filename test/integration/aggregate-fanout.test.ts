/**
 * The fan-out on the local stack (issue 7): the sample runs through the three handlers with
 * AGGREGATE_FANOUT=lambda, so aggregate-groups invokes functions/aggregate-part once per key-hash part
 * through the real LambdaClient and the Lambda Invoke API of infra/lambda-sim.ts, with the plan and the
 * part results in the S3 emulator. Its reports must equal, byte for byte, those the same staged data give
 * in process; no work object may remain.
 */
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LambdaSimulator, startLambdaSimulator } from "../../infra/lambda-sim.ts";
import { aggregatePeriods, type ReportManifest } from "../../lib/aggregate.ts";
import { WORK_PREFIX } from "../../lib/aggregate-parts.ts";
import { createRuntime } from "../../lib/runtime.ts";
import { runSampleOnStack, type SampleStackRun } from "../support/sample-stack.ts";
import { localClients } from "./helpers.ts";

const PART_FUNCTION = "glr-local-aggregate-part";
const PARTS = 8;

describe("aggregation fanned out per key-hash part on the local stack", () => {
  const clients = localClients();
  let lambda: LambdaSimulator;
  let run: SampleStackRun;

  beforeAll(async () => {
    lambda = await startLambdaSimulator({
      // Imported on first use, after the pipeline has set the handlers' environment (a cold start).
      [PART_FUNCTION]: async (event, context) =>
        (await import("../../functions/aggregate-part.ts")).handler(event, context),
    });
    run = await runSampleOnStack(clients, {
      seed: 11,
      months: ["2026-09", "2026-10"],
      env: {
        STAGING_PARTITIONS: String(PARTS),
        AGGREGATE_FANOUT: "lambda",
        AGGREGATE_PART_FUNCTION: PART_FUNCTION,
        AGGREGATE_FANOUT_MIN_ROWS: "1",
        AGGREGATE_FANOUT_CONCURRENCY: "3",
        LAMBDA_ENDPOINT: lambda.endpoint,
      },
    });
  }, 180_000);

  afterAll(async () => {
    await run?.stop();
    await lambda?.stop();
  });

  const body = async (runtime: ReturnType<typeof createRuntime>, key: string) =>
    (await runtime.aggregate.objects.getText(run.names.reportsBucket, key)) ?? "";

  it("runs every part in the part function and publishes what the in-process aggregation publishes", async () => {
    expect(run.result.ingestFailures).toEqual([]);
    const periods = run.result.published.map((p) => p.period);
    expect(periods).toEqual(run.sample.truth.months);
    const parts = lambda.invocations.filter((i) => i.functionName === PART_FUNCTION);
    expect(new Set(parts.map((i) => (i.event as { part: number }).part))).toEqual(
      new Set(Array.from({ length: PARTS }, (_, i) => i)),
    );

    // The same staged data, aggregated in this process (fan-out off).
    const local = createRuntime({ ...run.env, AGGREGATE_FANOUT: "off" });
    const again = await aggregatePeriods(local.aggregate, periods);
    expect(again.map((p) => p.period)).toEqual(periods);
    for (const [i, fanned] of run.result.published.entries()) {
      const inProcess = again[i];
      if (!inProcess) throw new Error(`no in-process report for ${fanned.period}`);
      const m = JSON.parse(await body(local, fanned.manifestKey)) as ReportManifest;
      expect(m.runId).toBe(inProcess.runId); // the period manifest now points at the in-process run
      for (const name of [
        "group_summary.csv",
        "group_members.csv",
        "unattributed_members.csv",
        "data_quality.csv",
      ]) {
        const a = fanned.files.find((f) => f.name === name);
        const b = inProcess.files.find((f) => f.name === name);
        expect(a && b, name).toBeTruthy();
        expect({ name, sha256: a?.sha256, rows: a?.rows }).toEqual({
          name,
          sha256: b?.sha256,
          rows: b?.rows,
        });
      }
    }
  }, 120_000);

  it("leaves no plan or part result behind", async () => {
    const listed = await clients.s3.send(
      new ListObjectsV2Command({ Bucket: run.names.exportsBucket, Prefix: WORK_PREFIX }),
    );
    expect(listed.KeyCount ?? 0).toBe(0);
  });

  it("a part function that fails makes the aggregation fail, naming the part", async () => {
    const failing = await startLambdaSimulator({
      [PART_FUNCTION]: async () => {
        throw new Error("injected part failure");
      },
    });
    try {
      const rt = createRuntime({ ...run.env, LAMBDA_ENDPOINT: failing.endpoint });
      await expect(
        aggregatePeriods(
          rt.aggregate,
          run.result.published.map((p) => p.period),
        ),
      ).rejects.toThrow(/aggregate part \d+ failed: Error: injected part failure/);
    } finally {
      await failing.stop();
    }
  });
});
