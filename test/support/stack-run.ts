/**
 * One test file's run of the three deployed handlers on the local stack, step by step (sync, upload,
 * drain the S3 events, aggregate), so that fault, log and load tests can interpose between the steps:
 * a fault proxy in front of S3 and DynamoDB, a wrapper around each ingest invocation (a Lambda deadline),
 * the dispatcher's concurrency. Handlers are imported once per test file (vitest isolates files), with
 * the environment given to `start()`: like a Lambda cold start.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { S3Event } from "aws-lambda";
import type { CapillarySimulator } from "../../infra/capillary-sim.ts";
import { lambdaContext, scheduledEvent } from "../../infra/lambda-context.ts";
import type { S3Dispatcher } from "../../infra/s3-dispatcher.ts";
import type { GeneratedSample } from "../../infra/sample/generate.ts";
import { LOCAL_CREDENTIALS } from "../../infra/stack.ts";
import { LedgerStore } from "../../lib/adapters/ledger-store.ts";
import type { PublishedReport } from "../../lib/aggregate.ts";
import type { StackContext } from "../integration/stack-context.ts";

export const SIM_CREDENTIALS = {
  oauth: { key: "k-oauth-key-7f3a", secret: "s-oauth-secret-91cd" },
  basic: { username: "u", password: "p" },
};

export interface Names {
  exportsBucket: string;
  reportsBucket: string;
  tableName: string;
}

export function handlerEnv(
  stack: StackContext,
  names: Names,
  endpoints: { s3: string; dynamo: string },
  sim: CapillarySimulator,
  sample: GeneratedSample,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    AWS_REGION: stack.region,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    S3_ENDPOINT: endpoints.s3,
    S3_FORCE_PATH_STYLE: "true",
    DYNAMODB_ENDPOINT: endpoints.dynamo,
    EXPORTS_BUCKET: names.exportsBucket,
    REPORTS_BUCKET: names.reportsBucket,
    TABLE_NAME: names.tableName,
    CAPILLARY_BASE_URL: sim.url,
    CAPILLARY_AUTH: "oauth",
    CAPILLARY_OAUTH_KEY: SIM_CREDENTIALS.oauth.key,
    CAPILLARY_OAUTH_SECRET: SIM_CREDENTIALS.oauth.secret,
    CAPILLARY_GROUP_IDS: sample.manifest.groupIds.join(","),
    CAPILLARY_RATE_PER_SECOND: "500",
    POWERTOOLS_LOG_LEVEL: "ERROR",
    ...extra,
  };
}

export interface Handlers {
  ingest: (event: S3Event) => Promise<unknown>;
  sync: () => Promise<{ synced: number; failed: unknown[] }>;
  aggregate: (event?: unknown) => Promise<PublishedReport[]>;
}

/** Import the handlers with `env` (their cold start). */
export async function loadHandlers(env: Record<string, string>): Promise<Handlers> {
  Object.assign(process.env, env);
  const ingest = await import("../../functions/ingest-export.ts");
  const sync = await import("../../functions/sync-groups.ts");
  const aggregate = await import("../../functions/aggregate-groups.ts");
  return {
    ingest: (event) => ingest.handler(event, lambdaContext("ingest-export")),
    sync: () => sync.handler(scheduledEvent(), lambdaContext("sync-groups")),
    aggregate: (event) => aggregate.handler(event ?? {}, lambdaContext("aggregate-groups")),
  };
}

/** Upload the sample's export files (in delivery order unless `keys` says otherwise), then drain. */
export async function deliver(
  s3: S3Client,
  bucket: string,
  dir: string,
  keys: string[],
  dispatcher: S3Dispatcher,
  opts: { concurrency?: number } = {},
): Promise<Awaited<ReturnType<S3Dispatcher["drain"]>>> {
  const queue = [...keys];
  const worker = async () => {
    for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
      const body = await readFile(join(dir, ...key.split("/")));
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 1 }, worker));
  return dispatcher.drain();
}

export function sampleKeys(sample: GeneratedSample): string[] {
  return [...sample.manifest.files].sort((a, b) => a.deliveryOrder - b.deliveryOrder).map((f) => f.key);
}

export async function readText(s3: S3Client, bucket: string, key: string): Promise<string | null> {
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return (await r.Body?.transformToString("utf8")) ?? "";
  } catch (e) {
    if ((e as { name?: string }).name === "NoSuchKey") return null;
    throw e;
  }
}

/**
 * What a stakeholder sees, followed through the manifests: for each period the files of the run its
 * manifest names (group_summary.json rows, unattributed_members.csv lines, data_quality.csv lines).
 */
export async function visibleReports(
  s3: S3Client,
  bucket: string,
  periods: string[],
): Promise<
  Record<string, { summary: Record<string, string>[]; unattributed: string[]; quality: string[] } | null>
> {
  const out: Record<
    string,
    { summary: Record<string, string>[]; unattributed: string[]; quality: string[] } | null
  > = {};
  for (const period of periods) {
    const m = await readText(s3, bucket, `reports/period=${period}/manifest.json`);
    if (m === null) {
      out[period] = null;
      continue;
    }
    const manifest = JSON.parse(m) as { files: { key: string; name: string; sha256: string }[] };
    const file = async (name: string) => {
      const f = manifest.files.find((x) => x.name === name || x.key.endsWith(`/${name}`));
      if (!f) throw new Error(`manifest of ${period} lacks ${name}`);
      const text = await readText(s3, bucket, f.key);
      if (text === null) throw new Error(`manifest of ${period} names a missing file ${f.key}`);
      return text;
    };
    const summary = JSON.parse(await file("group_summary.json")) as { rows: Record<string, string>[] };
    const lines = (t: string) => t.trim().split("\r\n").slice(1);
    out[period] = {
      summary: summary.rows,
      unattributed: lines(await file("unattributed_members.csv")),
      // Quality lines without the ledger's file ids would differ between runs: keep file and counts only.
      quality: lines(await file("data_quality.csv"))
        .map((l) => {
          const m = l.match(/^("(?:[^"]|"")*"|[^,]*),([^,]*),(\d+),(\d+),(\d+),/);
          if (!m) return l;
          const f = m[1] ?? "";
          const file = f.startsWith('"') ? f.slice(1, -1).replaceAll('""', '"') : f;
          return [file, ...m.slice(2, 6)].join("|");
        })
        .sort(),
    };
  }
  return out;
}

/** The truth of the sample, in the shape of visibleReports() (summary and unattributed). */
export function truthQuality(sample: GeneratedSample): string[] {
  return sample.truth.dataQuality
    .map((w) => [w.file, w.template, w.rows_read, w.rows_accepted, w.rows_rejected].join("|"))
    .sort();
}

export function truthReports(sample: GeneratedSample) {
  const out: Record<string, { summary: Record<string, string>[]; unattributed: string[] }> = {};
  for (const period of sample.truth.months) {
    out[period] = {
      summary: sample.truth.groupSummary.filter((r) => r.period === period) as Record<string, string>[],
      unattributed: sample.truth.unattributed
        .filter((r) => r.period === period)
        .map((r) => [r.period, r.user_id, r.rows, r.points_awarded, r.points_redeemed].join(",")),
    };
  }
  return out;
}

export function ledgerOf(ddb: DynamoDBDocumentClient, table: string): LedgerStore {
  return new LedgerStore(ddb, table);
}
