/* biome-ignore-all lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub names */
/**
 * The deployable artifacts work: `osls package` builds the four zips (the package the template test checks), and each bundled handler (.mjs from
 * the zip, nothing else: it runs outside the repository, so no node_modules can help it) is imported in a
 * fresh Node process, as the Lambda runtime would, and run against the local stack: S3 events from the
 * dispatcher go to the bundled ingest, then the bundled sync and aggregation (fanned out to the bundled
 * part function through a local Lambda Invoke API); reports are published and
 * the handlers emit their CloudWatch metrics (EMF) with the names the alarms watch.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { S3Event } from "aws-lambda";
import { unzipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import {
  isAllowed,
  neededFor,
  type RecordingProxy,
  roleStatements,
  startRecordingProxy,
} from "../../infra/deploy/iam-check.ts";
import {
  type CfnTemplate,
  FUNCTIONS,
  sharedPackage,
  TEST_PACKAGE_OPTIONS,
} from "../../infra/deploy/package.ts";
import { type LambdaSimulator, startLambdaSimulator } from "../../infra/lambda-sim.ts";
import { provision } from "../../infra/provision.ts";
import { type S3Dispatcher, startS3Dispatcher } from "../../infra/s3-dispatcher.ts";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import { LOCAL_CREDENTIALS } from "../../infra/stack.ts";
import { METRIC } from "../../lib/metrics.ts";
import { localClients, s3ClientFor, uniqueName } from "./helpers.ts";

const run = promisify(execFile);
type Fn = (typeof FUNCTIONS)[number];

const RUNNER = `
import { readFile, writeFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";
const [bundle, eventFile, resultFile, fn] = process.argv.slice(2);
const event = JSON.parse(await readFile(eventFile, "utf8"));
const deadline = Date.now() + 900_000;
const context = {
  functionName: fn, functionVersion: "$LATEST", memoryLimitInMB: "1024", awsRequestId: randomUUID(),
  invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:" + fn,
  logGroupName: "/aws/lambda/" + fn, logStreamName: "smoke", callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => deadline - Date.now(),
};
try {
  const mod = await import(pathToFileURL(bundle).href);
  const out = await mod.handler(event, context);
  await writeFile(resultFile, JSON.stringify({ ok: true, out }));
} catch (e) {
  await writeFile(resultFile, JSON.stringify({ ok: false, error: String(e?.stack ?? e) }));
}
`;

interface Invocation {
  ok: boolean;
  out?: unknown;
  error?: string;
  stdout: string;
}

/** Metric values by name from the EMF documents a process printed. */
function emfMetrics(stdout: string, namespace: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const aws = doc._aws as
      | { CloudWatchMetrics?: { Namespace: string; Metrics: { Name: string }[] }[] }
      | undefined;
    for (const d of aws?.CloudWatchMetrics ?? []) {
      if (d.Namespace !== namespace) continue;
      for (const m of d.Metrics) {
        const v = doc[m.Name];
        out.set(m.Name, [...(out.get(m.Name) ?? []), ...(Array.isArray(v) ? v : [v]).map(Number)]);
      }
    }
  }
  return out;
}

const sum = (xs: number[] | undefined) => (xs ?? []).reduce((a, b) => a + b, 0);

describe("bundled handlers (osls package) run in a fresh Node process", () => {
  const { stack, s3, dynamo } = localClients();
  const names = {
    exportsBucket: uniqueName("smoke-exports"),
    reportsBucket: uniqueName("smoke-reports"),
    tableName: uniqueName("smoke-table"),
  };
  const credentials = { oauth: { key: "k", secret: "s" }, basic: { username: "u", password: "p" } };
  const namespace = "GlrSmoke";
  let dir: string;
  let sample: GeneratedSample;
  let dispatcher: S3Dispatcher;
  let sim: CapillarySimulator;
  const ingestRuns: Invocation[] = [];
  /** The Lambda Invoke API the bundled aggregation fans out to: each part runs the bundled aggregate-part. */
  let lambda: LambdaSimulator;
  const partRuns: Invocation[] = [];
  let template: CfnTemplate;
  /** Per function: recording proxies in front of S3 (the dispatcher) and DynamoDB Local. */
  const proxies = {} as Record<Fn, { s3: RecordingProxy; ddb: RecordingProxy }>;

  async function invoke(fn: Fn, event: unknown, extraEnv: Record<string, string> = {}): Promise<Invocation> {
    const id = `${fn}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const eventFile = join(dir, `${id}.event.json`);
    const resultFile = join(dir, `${id}.result.json`);
    await writeFile(eventFile, JSON.stringify(event));
    const bundle = join(dir, fn, "functions", `${fn}.mjs`);
    const { stdout } = await run(
      process.execPath,
      [join(dir, "runner.mjs"), bundle, eventFile, resultFile, fn],
      {
        cwd: dirname(bundle),
        timeout: 120_000,
        maxBuffer: 64 << 20,
        env: {
          PATH: process.env.PATH ?? "",
          NODE_OPTIONS: "--enable-source-maps",
          AWS_LAMBDA_FUNCTION_NAME: fn,
          AWS_REGION: stack.region,
          AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
          S3_ENDPOINT: proxies[fn].s3.endpoint,
          S3_FORCE_PATH_STYLE: "true",
          DYNAMODB_ENDPOINT: proxies[fn].ddb.endpoint,
          EXPORTS_BUCKET: names.exportsBucket,
          REPORTS_BUCKET: names.reportsBucket,
          TABLE_NAME: names.tableName,
          POWERTOOLS_SERVICE_NAME: "glr-smoke",
          POWERTOOLS_METRICS_NAMESPACE: namespace,
          POWERTOOLS_LOG_LEVEL: "WARN",
          ...extraEnv,
        },
      },
    );
    const result = JSON.parse(await readFile(resultFile, "utf8")) as Omit<Invocation, "stdout">;
    return { ...result, stdout };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-smoke-"));
    const [pkg, built] = await Promise.all([
      sharedPackage(TEST_PACKAGE_OPTIONS),
      buildSample({ outDir: join(dir, "sample"), seed: 11, months: ["2026-09"] }),
    ]);
    sample = built;
    template = pkg.template;
    for (const fn of FUNCTIONS) {
      const files = unzipSync(new Uint8Array(await readFile(pkg.zip(fn))));
      for (const [name, bytes] of Object.entries(files)) {
        await mkdir(dirname(join(dir, fn, name)), { recursive: true });
        await writeFile(join(dir, fn, name), bytes);
      }
    }
    await writeFile(join(dir, "runner.mjs"), RUNNER);
    const first = sample.input.syncs[0];
    if (!first) throw new Error("the sample has a sync");
    sim = await startCapillarySimulator({ state: first.state, credentials });
    dispatcher = await startS3Dispatcher({ upstream: stack.s3Endpoint, region: stack.region });
    for (const fn of FUNCTIONS) {
      proxies[fn] = {
        s3: await startRecordingProxy(dispatcher.endpoint, "s3"),
        ddb: await startRecordingProxy(stack.dynamoEndpoint, "dynamodb"),
      };
    }
    dispatcher.setTarget(async (event: S3Event) => {
      const r = await invoke("ingest-export", event);
      ingestRuns.push(r);
      if (!r.ok) throw new Error(r.error);
    });
    lambda = await startLambdaSimulator({
      "aggregate-part": async (event) => {
        const r = await invoke("aggregate-part", event);
        partRuns.push(r);
        if (!r.ok) throw new Error(r.error);
        return r.out;
      },
    });
    await provision({ s3, ddb: dynamo }, names);
  }, 240_000);

  afterAll(async () => {
    for (const p of Object.values(proxies)) await Promise.all([p.s3.stop(), p.ddb.stop()]);
    await dispatcher?.stop();
    await sim?.stop();
    await lambda?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("each zip holds one ESM bundle and its source map", async () => {
    for (const fn of FUNCTIONS) {
      const code = await readFile(join(dir, fn, "functions", `${fn}.mjs`), "utf8");
      expect(code).toMatch(/^import |\nexport \{/m);
      expect(code).toContain("sourceMappingURL=");
    }
  });

  it("sync (bundled) writes the groups from the Capillary API and reports its requests", async () => {
    const r = await invoke(
      "sync-groups",
      { source: "aws.events", "detail-type": "Scheduled Event", detail: {} },
      {
        CAPILLARY_BASE_URL: sim.url,
        CAPILLARY_AUTH: "oauth",
        CAPILLARY_OAUTH_KEY: credentials.oauth.key,
        CAPILLARY_OAUTH_SECRET: credentials.oauth.secret,
        CAPILLARY_GROUP_IDS: sample.manifest.groupIds.join(","),
        CAPILLARY_RATE_PER_SECOND: "500",
        SYNC_CONTINUE: "schedule",
      },
    );
    expect(r.error).toBeUndefined();
    const out = r.out as { synced: number; failed: string[] };
    expect(out.synced).toBe(sample.manifest.groupIds.length);
    expect(out.failed).toEqual([]);
    const metrics = emfMetrics(r.stdout, namespace);
    expect(metrics.get(METRIC.syncGroupsSynced)).toEqual([out.synced]);
    expect(metrics.get(METRIC.syncGroupsFailed)).toEqual([0]);
    expect(sum(metrics.get(METRIC.capillaryRequests))).toBeGreaterThanOrEqual(out.synced);
    expect(metrics.has(METRIC.capillaryRetries)).toBe(true);
  });

  it("ingest (bundled) runs for each S3 event of an upload under exports/ and reports its rows", async () => {
    const client = s3ClientFor(dispatcher.endpoint);
    const root = join(dir, "sample");
    const { PutObjectCommand } = await import("@aws-sdk/client-s3");
    const keys = [...sample.manifest.files]
      .sort((a, b) => a.deliveryOrder - b.deliveryOrder)
      .map((f) => f.key);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.startsWith("exports/"))).toBe(true);
    for (const key of keys) {
      const body = await readFile(join(root, ...key.split("/")));
      await client.send(new PutObjectCommand({ Bucket: names.exportsBucket, Key: key, Body: body }));
    }
    await dispatcher.drain();
    expect(ingestRuns.filter((r) => !r.ok).map((r) => r.error)).toEqual([]);
    expect(ingestRuns).toHaveLength(keys.length);
    const outcomes = ingestRuns.flatMap((r) => r.out as { status: string; rowsAccepted?: number }[]);
    expect(outcomes.every((o) => o.status === "COMMITTED")).toBe(true);
    const accepted = outcomes.reduce((a, o) => a + (o.rowsAccepted ?? 0), 0);
    expect(accepted).toBeGreaterThan(0);
    const metrics = ingestRuns.map((r) => emfMetrics(r.stdout, namespace));
    expect(sum(metrics.flatMap((m) => m.get(METRIC.rowsAccepted) ?? []))).toBe(accepted);
    expect(metrics.every((m) => m.has(METRIC.rowsRead) && m.has(METRIC.rowsRejected))).toBe(true);
  });

  it("aggregate (bundled), fanned out to the bundled part function, publishes the reports and the report-age metric", async () => {
    const r = await invoke(
      "aggregate-groups",
      {},
      {
        AGGREGATE_FANOUT: "lambda",
        AGGREGATE_PART_FUNCTION: "aggregate-part",
        AGGREGATE_FANOUT_MIN_ROWS: "1",
        AGGREGATE_FANOUT_CONCURRENCY: "4",
        LAMBDA_ENDPOINT: lambda.endpoint,
      },
    );
    expect(r.error).toBeUndefined();
    expect(partRuns.map((p) => p.error)).toEqual(Array(8).fill(undefined));
    expect(partRuns.map((p) => (p.out as { part: number }).part).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const published = r.out as { period: string; manifestKey: string; groups: number }[];
    expect(published.map((p) => p.period)).toEqual(sample.truth.months);
    expect(published[0]?.groups).toBe(sample.manifest.groupIds.length);
    const latest = await s3.send(
      new GetObjectCommand({ Bucket: names.reportsBucket, Key: "reports/latest/manifest.json" }),
    );
    expect(await latest.Body?.transformToString("utf8")).toContain(sample.truth.months.at(-1));
    const metrics = emfMetrics(r.stdout, namespace);
    expect(metrics.get(METRIC.reportsPublished)).toEqual([published.length]);
    expect(metrics.get(METRIC.unreportedDeliveryAge)).toEqual([0]);
    expect(metrics.get(METRIC.reportDelay)?.length).toBe(published.length);
  });

  it("every S3 and DynamoDB call each bundle made is allowed by its role in the template", () => {
    const alias = {
      [names.exportsBucket]: "glr-ci-exports-${AWS::AccountId}-${AWS::Region}",
      [names.reportsBucket]: "glr-ci-reports-${AWS::AccountId}-${AWS::Region}",
    };
    const logical: Record<Fn, string> = {
      "ingest-export": "IngestDashexport",
      "sync-groups": "SyncDashgroups",
      "aggregate-groups": "AggregateDashgroups",
      "aggregate-part": "AggregateDashpart",
    };
    for (const fn of FUNCTIONS) {
      const statements = roleStatements(template, logical[fn]);
      const calls = [...proxies[fn].s3.calls, ...proxies[fn].ddb.calls];
      expect(calls.length, fn).toBeGreaterThan(0);
      const denied = calls.flatMap((c) => neededFor(c, alias)).filter((n) => !isAllowed(statements, n));
      expect({ fn, denied }).toEqual({ fn, denied: [] });
    }
  });
});
