/**
 * Issue 8, faults: the three deployed handlers on the local stack with faults injected between them and
 * S3 / DynamoDB (test/support/fault-proxy.ts) and in the Capillary simulator. Transient faults (a body
 * reset midway, 503 SlowDown on writes, DynamoDB throttling and UnprocessedItems, API 5xx and timeouts, a
 * Lambda deadline mid-ingest and mid-report, a crash between staging and the ledger's commit) are retried
 * and the published reports equal the sample's truth, i.e. a clean run. A fault that persists ends FAILED
 * with its reason in the ledger and in the failure destination, and no partial report is ever visible.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CopyObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { S3Event } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import { provision } from "../../infra/provision.ts";
import { type S3Dispatcher, startS3Dispatcher } from "../../infra/s3-dispatcher.ts";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import { fileIdOf } from "../../lib/ingest.ts";
import { dynamoError, type FaultProxy, s3Error, startFaultProxy } from "../support/fault-proxy.ts";
import {
  deliver,
  type Handlers,
  handlerEnv,
  ledgerOf,
  loadHandlers,
  readText,
  SIM_CREDENTIALS,
  sampleKeys,
  truthQuality,
  truthReports,
  visibleReports,
} from "../support/stack-run.ts";
import { localClients, s3ClientFor, uniqueName } from "./helpers.ts";

class DeadlineReached extends Error {
  constructor(fn: string) {
    super(`Task timed out: ${fn} reached its deadline`);
    this.name = "DeadlineReached";
  }
}

describe("faults: after retries the reports equal a clean run; a persistent fault ends FAILED", () => {
  const { stack, s3, ddb, dynamo } = localClients();
  const names = {
    exportsBucket: uniqueName("faults-exports"),
    reportsBucket: uniqueName("faults-reports"),
    tableName: uniqueName("faults-table"),
  };
  let dir: string;
  let sample: GeneratedSample;
  let dispatcher: S3Dispatcher;
  let s3Faults: FaultProxy;
  let ddbFaults: FaultProxy;
  let sim: CapillarySimulator;
  let h: Handlers;
  let upload: ReturnType<typeof s3ClientFor>;
  let drained: Awaited<ReturnType<S3Dispatcher["drain"]>>;
  let killedIngests = 0;
  let killedReport = false;
  let visibleAfterKilledReport: Awaited<ReturnType<typeof visibleReports>> | undefined;
  let latestAfterKilledReport: string | null | undefined;

  const isExportGet = (r: { method: string; path: string }) =>
    r.method === "GET" && r.path.startsWith(`/${names.exportsBucket}/exports/`);
  const isPut = (prefix: string) => (r: { method: string; path: string }) =>
    r.method === "PUT" && r.path.startsWith(prefix);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-faults-"));
    sample = await buildSample({ outDir: dir, seed: 7, months: ["2026-10"] });
    const [first, second] = sample.input.syncs;
    if (!first || !second) throw new Error("the sample has two syncs");
    // One invocation at a time: a "timed out" invocation stays frozen (as Lambda kills it), never racing its retry.
    dispatcher = await startS3Dispatcher({
      upstream: stack.s3Endpoint,
      region: stack.region,
      concurrency: 1,
      retryDelayMs: 20,
    });
    s3Faults = await startFaultProxy(dispatcher.endpoint);
    ddbFaults = await startFaultProxy(stack.dynamoEndpoint);
    sim = await startCapillarySimulator({ state: first.state, credentials: SIM_CREDENTIALS });
    await provision({ s3, ddb: dynamo }, names);
    upload = s3ClientFor(dispatcher.endpoint);
    h = await loadHandlers(
      handlerEnv(stack, names, { s3: s3Faults.endpoint, dynamo: ddbFaults.endpoint }, sim, sample, {
        CAPILLARY_TIMEOUT_MS: "400",
        POWERTOOLS_LOG_LEVEL: "SILENT", // the failures logged here are the injected ones
      }),
    );

    // --- sync under API faults, DynamoDB throttling and UnprocessedItems
    sim.inject({ kind: "status", path: "/v2/userGroup2", status: 503, times: 2 });
    sim.inject({ kind: "status", path: "/v2/userGroup2/members", status: 500, times: 2 });
    sim.inject({ kind: "delay", path: "/v2/userGroup2/members", ms: 1500, times: 2 });
    sim.inject({ kind: "status", path: "/v2/userGroup2/members", status: 429, retryAfter: "0", times: 1 });
    ddbFaults.add({
      name: "ddb-throttle",
      match: (r) => r.operation !== null,
      every: 9,
      times: 15,
      action: dynamoError(
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded.",
      ),
    });
    ddbFaults.add({
      name: "ddb-unprocessed",
      match: (r) => r.operation === "BatchWriteItem",
      every: 2,
      action: unprocessedHalf(),
    });
    for (const state of [first.state, second.state]) {
      sim.setState(state);
      const r = await h.sync();
      if (r.failed.length > 0) throw new Error(`sync failed for ${JSON.stringify(r.failed)}`);
    }

    // --- ingest: body reset midway, 503 SlowDown on staging writes, a crash between staging and the
    // ledger's commit, a Lambda deadline mid-ingest; DynamoDB throttling still on
    // At most two failed attempts per file (Lambda retries an async event twice): even files have their
    // body reset midway, odd ones crash before the ledger commit; the deadline hits two more.
    const keys = sampleKeys(sample);
    const even = new Set(keys.filter((_, i) => i % 2 === 0));
    const odd = keys.filter((_, i) => i % 2 === 1);
    s3Faults.add({
      name: "get-reset-midway",
      match: (r) => isExportGet(r) && even.has(r.path.slice(names.exportsBucket.length + 2)),
      perKey: (r) => r.path,
      times: 1,
      action: { kind: "reset-midway", fraction: 0.5 },
    });
    s3Faults.add({
      name: "staging-slowdown",
      match: isPut(`/${names.exportsBucket}/staging/`),
      every: 8,
      action: s3Error(503, "SlowDown", "Please reduce your request rate."),
    });
    s3Faults.add({
      name: "deadline-ingest",
      match: isPut(`/${names.exportsBucket}/staging/`),
      every: 7,
      perKey: (r) => r.path.split("/").pop()?.split(".")[0] ?? "", // the file id: two different files
      times: 1,
      total: 2,
      action: { kind: "hold" },
    });
    ddbFaults.add({
      name: "crash-before-commit",
      match: (r) => {
        if (r.operation !== "PutItem" || !r.body.includes('"COMMITTED"')) return false;
        const body = r.body.toString("utf8");
        return odd.some((k) => body.includes(`"sourceKey":{"S":${JSON.stringify(k)}}`));
      },
      perKey: (r) => /"fileId":\{"S":"([0-9a-f]+)"/.exec(r.body.toString("utf8"))?.[1] ?? "",
      times: 1,
      // Not retryable by the SDK: the invocation ends here, staged objects written, the ledger not committed.
      action: dynamoError(
        400,
        "UnrecognizedClientException",
        "simulated crash between staging and the ledger",
      ),
    });
    dispatcher.setTarget(async (event: S3Event) => {
      const deadline = s3Faults.held("deadline-ingest").then(() => {
        throw new DeadlineReached("ingest-export");
      });
      try {
        await Promise.race([h.ingest(event), deadline]);
      } catch (e) {
        if (e instanceof DeadlineReached) killedIngests += 1;
        throw e;
      }
    });
    drained = await deliver(upload, names.exportsBucket, dir, sampleKeys(sample), dispatcher);

    // --- aggregate: 503 on report writes, and a deadline in the middle of the first run's writes
    s3Faults.add({
      name: "reports-slowdown",
      match: isPut(`/${names.reportsBucket}/reports/`),
      every: 5,
      action: s3Error(503, "SlowDown", "Please reduce your request rate."),
    });
    s3Faults.add({
      name: "deadline-report",
      match: (r) => isPut(`/${names.reportsBucket}/reports/`)(r) && r.path.endsWith("/group_members.csv"),
      times: 1,
      action: { kind: "hold" },
    });
    const deadline = s3Faults.held("deadline-report").then(() => {
      throw new DeadlineReached("aggregate-groups");
    });
    await Promise.race([h.aggregate(), deadline]).catch((e: unknown) => {
      if (!(e instanceof DeadlineReached)) throw e;
      killedReport = true;
    });
    visibleAfterKilledReport = await visibleReports(s3, names.reportsBucket, sample.truth.months);
    latestAfterKilledReport = await readText(s3, names.reportsBucket, "reports/latest/manifest.json");
    // The frozen run's lease runs out (960 s in production): age it instead of waiting.
    await ddb.send(
      new UpdateCommand({
        TableName: names.tableName,
        Key: { pk: "AGGREGATE#LOCK", sk: "LOCK" },
        UpdateExpression: "SET expiresAt = :z",
        ExpressionAttributeValues: { ":z": 0 },
      }),
    );
    await h.aggregate();
    for (const rule of ["get-reset-midway", "staging-slowdown", "deadline-ingest", "reports-slowdown"])
      s3Faults.clear(rule);
    ddbFaults.clear("crash-before-commit");
  });

  afterAll(async () => {
    await s3Faults?.stop();
    await ddbFaults?.stop();
    await dispatcher?.stop();
    await sim?.stop();
    upload?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("injected every kind of fault", () => {
    const count = (p: FaultProxy, rule: string) => p.injected.filter((f) => f.rule === rule).length;
    const files = sample.manifest.files.length;
    expect(count(s3Faults, "get-reset-midway")).toBe(Math.ceil(files / 2));
    expect(count(s3Faults, "staging-slowdown")).toBeGreaterThan(files / 2);
    expect(count(s3Faults, "deadline-ingest")).toBe(2);
    expect(killedIngests).toBe(2);
    expect(count(s3Faults, "reports-slowdown")).toBeGreaterThan(0);
    expect(killedReport).toBe(true);
    expect(count(ddbFaults, "ddb-throttle")).toBeGreaterThan(10);
    expect(count(ddbFaults, "ddb-unprocessed")).toBeGreaterThan(0);
    expect(count(ddbFaults, "crash-before-commit")).toBe(Math.floor(files / 2));
    const simFaults = sim
      .requests()
      .filter((r) => r.fault !== null)
      .map((r) => r.fault);
    expect(new Set(simFaults)).toEqual(new Set(["status", "delay"]));
  });

  it("ingests every file in the end (retries), each exactly once committed", async () => {
    expect(drained.failed).toEqual([]);
    const ledger = ledgerOf(ddb, names.tableName);
    const entries = await ledger.list();
    const committed = entries.filter((e) => e.status === "COMMITTED");
    expect(committed.map((e) => e.sourceKey).sort()).toEqual(sampleKeys(sample).sort());
    expect(entries.filter((e) => e.status !== "COMMITTED")).toEqual([]);
  });

  it("shows no partial report while a run is cut by its deadline", () => {
    expect(latestAfterKilledReport).toBeNull();
    for (const period of sample.truth.months) expect(visibleAfterKilledReport?.[period]).toBeNull();
  });

  it("publishes reports equal to the truth (a clean run)", async () => {
    const got = await visibleReports(s3, names.reportsBucket, sample.truth.months);
    const want = truthReports(sample);
    for (const period of sample.truth.months) {
      expect(got[period]?.summary).toEqual(want[period]?.summary);
      expect(got[period]?.unattributed).toEqual(want[period]?.unattributed);
    }
    const last = sample.truth.months.at(-1) ?? "";
    expect(got[last]?.quality).toEqual(truthQuality(sample));
  });

  it("a re-run frozen mid-report leaves the published set visible and whole", async () => {
    const latestBefore = await readText(s3, names.reportsBucket, "reports/latest/manifest.json");
    s3Faults.add({
      name: "deadline-rerun",
      match: (r) =>
        isPut(`/${names.reportsBucket}/reports/`)(r) && r.path.endsWith("/unattributed_members.csv"),
      times: 1,
      action: { kind: "hold" },
    });
    const deadline = s3Faults.held("deadline-rerun").then(() => "frozen" as const);
    const outcome = await Promise.race([h.aggregate({ periods: sample.truth.months }), deadline]);
    expect(outcome).toBe("frozen");
    expect(await readText(s3, names.reportsBucket, "reports/latest/manifest.json")).toBe(latestBefore);
    const got = await visibleReports(s3, names.reportsBucket, sample.truth.months);
    const want = truthReports(sample);
    for (const period of sample.truth.months) expect(got[period]?.summary).toEqual(want[period]?.summary);
    await ddb.send(
      new UpdateCommand({
        TableName: names.tableName,
        Key: { pk: "AGGREGATE#LOCK", sk: "LOCK" },
        UpdateExpression: "SET expiresAt = :z",
        ExpressionAttributeValues: { ":z": 0 },
      }),
    );
  });

  it("a fault that persists ends FAILED with its reason; the reports stay whole; a re-drive recovers", async () => {
    const source = sample.manifest.files.find((f) => f.template === "points" && f.packaging === "csv");
    if (!source) throw new Error("the sample has a plain Points CSV");
    const key = "exports/points/redelivered-copy.csv";
    s3Faults.add({
      name: "get-reset-always",
      match: (r) => r.method === "GET" && r.path === `/${names.exportsBucket}/${key}`,
      action: { kind: "reset-midway", fraction: 0.3 },
    });
    await upload.send(
      new CopyObjectCommand({
        Bucket: names.exportsBucket,
        Key: key,
        CopySource: `${names.exportsBucket}/${source.key}`,
      }),
    );
    const failed = await dispatcher.drain();
    expect(failed.failed).toHaveLength(1);
    expect(failed.failed[0]?.key).toBe(key);
    expect(failed.failed[0]?.error).toMatch(/ingestion failed/);
    expect(s3Faults.injected.filter((f) => f.rule === "get-reset-always")).toHaveLength(3); // 1 + 2 retries

    const ledger = ledgerOf(ddb, names.tableName);
    const entry = (await ledger.list()).find((e) => e.sourceKey === key);
    expect(entry?.status).toBe("FAILED");
    expect(entry?.attempts).toBe(3);
    expect(entry?.reason).toMatch(/aborted|ECONNRESET|socket|terminated|premature/i);

    // The reports do not move: nothing of the failed file counts.
    await h.aggregate({ periods: sample.truth.months });
    const want = truthReports(sample);
    let got = await visibleReports(s3, names.reportsBucket, sample.truth.months);
    for (const period of sample.truth.months) expect(got[period]?.summary).toEqual(want[period]?.summary);

    // Cause fixed: re-drive as the README says (copy the object onto itself), same content, same result.
    s3Faults.clear("get-reset-always");
    await upload.send(
      new CopyObjectCommand({
        Bucket: names.exportsBucket,
        Key: key,
        CopySource: `${names.exportsBucket}/${key}`,
        MetadataDirective: "REPLACE",
      }),
    );
    expect((await dispatcher.drain()).failed).toEqual([]);
    const after = (await ledger.list()).filter((e) => e.sourceKey === key);
    expect(after.map((e) => e.status)).toContain("COMMITTED");
    await h.aggregate();
    got = await visibleReports(s3, names.reportsBucket, sample.truth.months);
    for (const period of sample.truth.months) {
      expect(got[period]?.summary).toEqual(want[period]?.summary);
      expect(got[period]?.unattributed).toEqual(want[period]?.unattributed);
    }
  });

  it("a persistent 503 SlowDown on staging writes ends FAILED too, never COMMITTED", async () => {
    const key = "exports/points/slowdown-copy.csv";
    s3Faults.add({
      name: "staging-slowdown-always",
      match: isPut(`/${names.exportsBucket}/staging/`),
      action: s3Error(503, "SlowDown", "Please reduce your request rate."),
    });
    const body = Buffer.from(
      "event_id,dim_event_user_id,allocated_points,deducted_points,dim_event_date_id,dim_points_event_type_id\n999000111,1,1.000,0,20260915,awarded\n",
    );
    await upload.send(new PutObjectCommand({ Bucket: names.exportsBucket, Key: key, Body: body }));
    const r = await dispatcher.drain();
    s3Faults.clear("staging-slowdown-always");
    expect(r.failed.map((f) => f.key)).toEqual([key]);
    const entry = (await ledgerOf(ddb, names.tableName).list()).find((e) => e.sourceKey === key);
    expect(entry?.status).toBe("FAILED");
    expect(entry?.reason).toMatch(/SlowDown/);
    expect(fileIdOf(names.exportsBucket, key, entry?.eTag ?? "")).toBe(entry?.fileId);
  });
});

/**
 * BatchWriteItem: forward the first half of each table's requests and answer the other half as
 * UnprocessedItems, as DynamoDB does under load. The client must retry them.
 */
function unprocessedHalf(): import("../support/fault-proxy.ts").FaultAction {
  const split = (body: Buffer) => {
    const b = JSON.parse(body.toString("utf8")) as { RequestItems: Record<string, unknown[]> };
    const kept: Record<string, unknown[]> = {};
    const dropped: Record<string, unknown[]> = {};
    for (const [t, items] of Object.entries(b.RequestItems)) {
      const keep = Math.ceil(items.length / 2);
      kept[t] = items.slice(0, keep);
      if (items.length > keep) dropped[t] = items.slice(keep);
    }
    return { rest: b, kept, dropped };
  };
  return {
    kind: "rewrite",
    request: (body) => {
      const { rest, kept } = split(body);
      return Buffer.from(JSON.stringify({ ...rest, RequestItems: kept }));
    },
    response: (answer, original) => {
      const { dropped } = split(original);
      const a = JSON.parse(answer.toString("utf8")) as { UnprocessedItems?: Record<string, unknown[]> };
      const un = { ...(a.UnprocessedItems ?? {}) };
      for (const [t, items] of Object.entries(dropped)) un[t] = [...(un[t] ?? []), ...items];
      return Buffer.from(JSON.stringify({ ...a, UnprocessedItems: un }));
    },
  };
}
