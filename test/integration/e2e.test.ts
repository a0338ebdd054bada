/**
 * The main job end to end (issue 2): sample exports in, group reports out, through the three Lambda
 * handlers against DynamoDB Local, the S3 emulator behind the event dispatcher and the Capillary
 * simulator. Every figure of every group and period must equal the generator's independent truth.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import { type PipelineResult, runPipeline } from "../../infra/pipeline.ts";
import { provision } from "../../infra/provision.ts";
import { type S3Dispatcher, startS3Dispatcher } from "../../infra/s3-dispatcher.ts";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import { GROUP_MEMBERS_COLUMNS, publishedCell } from "../../infra/sample/truth.ts";
import { LOCAL_CREDENTIALS } from "../../infra/stack.ts";
import { localClients, uniqueName } from "./helpers.ts";

const credentials = { oauth: { key: "k", secret: "s" }, basic: { username: "u", password: "p" } };

describe("demo pipeline equals the generator's truth", () => {
  const { stack, s3, dynamo } = localClients();
  const names = {
    exportsBucket: uniqueName("exports"),
    reportsBucket: uniqueName("reports"),
    tableName: uniqueName("table"),
  };
  let dir: string;
  let sample: GeneratedSample;
  let dispatcher: S3Dispatcher;
  let sim: CapillarySimulator;
  let result: PipelineResult;

  const report = async (key: string) => {
    const r = await s3.send(new GetObjectCommand({ Bucket: names.reportsBucket, Key: key }));
    return (await r.Body?.transformToString("utf8")) ?? "";
  };
  const reportJson = async (period: string) => {
    const rep = result.published.find((p) => p.period === period);
    const key = rep?.files.find((f) => f.key.endsWith("/group_summary.json"))?.key;
    if (!key) throw new Error(`no group_summary.json for ${period}`);
    return JSON.parse(await report(key)) as { rows: Record<string, string>[]; columns: string[] };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-e2e-"));
    sample = await buildSample({ outDir: dir, seed: 7, months: ["2026-09", "2026-10"] });
    const [first, second] = sample.input.syncs;
    if (!first || !second) throw new Error("the sample has two syncs");
    dispatcher = await startS3Dispatcher({ upstream: stack.s3Endpoint, region: stack.region });
    sim = await startCapillarySimulator({ state: first.state, credentials });
    await provision({ s3, ddb: dynamo }, names);
    result = await runPipeline({
      env: {
        AWS_REGION: stack.region,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
        S3_ENDPOINT: dispatcher.endpoint,
        S3_FORCE_PATH_STYLE: "true",
        DYNAMODB_ENDPOINT: stack.dynamoEndpoint,
        EXPORTS_BUCKET: names.exportsBucket,
        REPORTS_BUCKET: names.reportsBucket,
        TABLE_NAME: names.tableName,
        CAPILLARY_BASE_URL: sim.url,
        CAPILLARY_AUTH: "oauth",
        CAPILLARY_OAUTH_KEY: credentials.oauth.key,
        CAPILLARY_OAUTH_SECRET: credentials.oauth.secret,
        CAPILLARY_GROUP_IDS: sample.manifest.groupIds.join(","),
        CAPILLARY_RATE_PER_SECOND: "500",
        POWERTOOLS_LOG_LEVEL: "ERROR",
      },
      dispatcher,
      capillary: { simulator: sim, states: [first.state, second.state] },
      uploads: [...sample.manifest.files]
        .sort((a, b) => a.deliveryOrder - b.deliveryOrder)
        .map((f) => ({ key: f.key, path: join(dir, ...f.key.split("/")) })),
    });
  });

  afterAll(async () => {
    await dispatcher?.stop();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("ingests every file through S3 events without failure", () => {
    expect(result.ingestFailures).toEqual([]);
    expect(result.uploaded).toHaveLength(sample.manifest.files.length);
    expect(result.published.map((p) => p.period)).toEqual(sample.truth.months);
  });

  it("publishes every figure of every group and period as the truth says", async () => {
    for (const period of sample.truth.months) {
      const { rows, columns } = await reportJson(period);
      const want = sample.truth.groupSummary.filter((r) => r.period === period);
      expect(columns).toEqual(Object.keys(want[0] ?? {}));
      expect(rows).toHaveLength(want.length);
      for (const [i, w] of want.entries()) expect({ i, ...rows[i] }).toEqual({ i, ...w });
    }
  });

  it("lists every group member of every period with the truth's figures, cell by cell", async () => {
    const keyOf = (r: Record<string, string | undefined>) => `${r.period}|${r.group_id}|${r.user_id}`;
    let checked = 0;
    for (const period of sample.truth.months) {
      const rep = result.published.find((p) => p.period === period);
      const key = rep?.files.find((f) => f.key.endsWith("/group_members.csv"))?.key;
      if (!key) throw new Error(`no group_members.csv for ${period}`);
      const [header, ...data]: string[][] = parse(await report(key), { bom: true });
      expect(header).toEqual([...GROUP_MEMBERS_COLUMNS]);
      const rows = data.map((r) => Object.fromEntries((header ?? []).map((h, i) => [h, r[i]])));
      const want = sample.truth.groupMembers
        .filter((r) => r.period === period)
        .map((r) => Object.fromEntries(GROUP_MEMBERS_COLUMNS.map((c) => [c, publishedCell(r[c] ?? "")])));
      expect(want.length).toBeGreaterThan(0);
      // Missing or extra members first (a readable diff), then every cell of every row, in order.
      expect(rows.map(keyOf)).toEqual(want.map(keyOf));
      for (const [i, w] of want.entries()) expect({ i, ...rows[i] }).toEqual({ i, ...w });
      checked += rows.length;
    }
    expect(checked).toBe(sample.truth.groupMembers.length);
  });

  it("reports unattributed members as the truth says", async () => {
    for (const period of sample.truth.months) {
      const rep = result.published.find((p) => p.period === period);
      const key = rep?.files.find((f) => f.key.endsWith("/unattributed_members.csv"))?.key ?? "";
      const lines = (await report(key)).trim().split("\r\n");
      const want = sample.truth.unattributed.filter((r) => r.period === period);
      expect(lines.slice(1)).toEqual(
        want.map((r) => [r.period, r.user_id, r.rows, r.points_awarded, r.points_redeemed].join(",")),
      );
    }
  });

  it("accounts for every row of every file: read = accepted + rejected (invariant 3)", async () => {
    const rep = result.published.at(-1);
    const key = rep?.files.find((f) => f.key.endsWith("/data_quality.csv"))?.key ?? "";
    const [header, ...lines] = (await report(key)).trim().split("\r\n");
    expect(header).toBe(
      "file,template,rows_read,rows_accepted,rows_rejected,first_reject_reason,file_status,error",
    );
    const got = lines.map(
      (l) => l.match(/^("(?:[^"]|"")*"|[^,]*),([^,]*),(\d+),(\d+),(\d+),/)?.slice(1, 6) ?? [],
    );
    const unquote = (s: string) => (s.startsWith('"') ? s.slice(1, -1).replaceAll('""', '"') : s);
    const byFile = new Map(
      got.map(([f = "", t, r, a, j]) => [unquote(f), { template: t, read: r, accepted: a, rejected: j }]),
    );
    for (const w of sample.truth.dataQuality) {
      expect({ file: w.file, ...byFile.get(w.file ?? "") }).toEqual({
        file: w.file,
        template: w.template,
        read: w.rows_read,
        accepted: w.rows_accepted,
        rejected: w.rows_rejected,
      });
    }
    expect(byFile.size).toBe(sample.truth.dataQuality.length);
  });

  it("switches reports/latest/ to the newest period's run", async () => {
    const latest = JSON.parse(await report("reports/latest/manifest.json")) as {
      period: string;
      runId: string;
    };
    const newest = result.published.at(-1);
    expect(latest).toMatchObject({ period: newest?.period, runId: newest?.runId });
  });
});
