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
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { z } from "zod";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GROUP_SUMMARY_COLUMNS } from "../lib/domain/aggregate.ts";
import { listFiles, runPipeline } from "./pipeline.ts";
import { DEFAULT_NAMES, provision } from "./provision.ts";
import { buildSample } from "./sample/generate.ts";
import type { SimCredentials } from "./sample/membership-types.ts";
import { startStack } from "./stack.ts";

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
  let args: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      options: {
        exports: { type: "string" },
        "capillary-url": { type: "string" },
        keep: { type: "boolean", default: false },
        out: { type: "string", default: "out" },
        seed: { type: "string", default: "42" },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: false,
    });
  try {
    args = parse();
  } catch (e) {
    fail((e as Error).message);
  }
  const o = args.values;
  if (o.help) {
    console.log(USAGE);
    return;
  }
  const seed = Number(o.seed);
  if (!Number.isInteger(seed)) fail(`--seed must be an integer, got ${JSON.stringify(o.seed)}`);
  const capillaryUrl = o["capillary-url"];
  if (capillaryUrl !== undefined && !URL.canParse(capillaryUrl))
    fail(`--capillary-url is not a URL: ${capillaryUrl}`);

  const t0 = Date.now();
  const say = (line: string) =>
    console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}`);

  // 1. Sample data (the membership also seeds the simulator when no real API is given).
  const sampleDir = resolve(".sample");
  await rm(sampleDir, { recursive: true, force: true });
  const sample = await buildSample({ outDir: sampleDir, seed });
  const { manifest } = sample;
  say(
    `sample: ${manifest.files.length} export files for ${manifest.groupIds.length} groups, months ${manifest.months.join(", ")} (${sampleDir})`,
  );
  let exportsRoot = sampleDir;
  let order = [...manifest.files].sort((a, b) => a.deliveryOrder - b.deliveryOrder).map((f) => f.key);
  if (o.exports !== undefined) {
    const dir = resolve(o.exports);
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory()) fail(`--exports: ${dir} is not a directory`);
    const hasExports = await stat(join(dir, "exports"))
      .then((s) => s.isDirectory())
      .catch(() => false);
    exportsRoot = hasExports ? dir : await stageUnderExports(dir);
    order = (await listFiles(exportsRoot)).filter((k) => k.startsWith("exports/"));
    if (order.length === 0) fail(`--exports: no files in ${dir}`);
  }
  const [initial, current] = sample.input.syncs.map((s) => s.state);
  if (!initial || !current) throw new Error("the sample has no membership states");

  // 2. The stack.
  const stack = await startStack(
    capillaryUrl ? {} : { capillary: { state: initial, credentials: DEMO_CREDENTIALS } },
  );
  say(
    `local stack up in ${(stack.startupMs.total / 1000).toFixed(1)}s: S3 ${stack.s3Endpoint}, DynamoDB ${stack.dynamoEndpoint}${stack.capillaryUrl ? `, Capillary simulator ${stack.capillaryUrl}` : ""}`,
  );
  let keep = false;
  try {
    const names = DEFAULT_NAMES;
    const env: Record<string, string> = {
      ...stack.env(),
      EXPORTS_BUCKET: names.exportsBucket,
      REPORTS_BUCKET: names.reportsBucket,
      TABLE_NAME: names.tableName,
      POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? "WARN",
    };
    if (capillaryUrl) {
      env.CAPILLARY_BASE_URL = capillaryUrl;
      for (const [k, v] of Object.entries(process.env))
        if (k.startsWith("CAPILLARY_") && v !== undefined && k !== "CAPILLARY_BASE_URL") env[k] = v;
    } else {
      Object.assign(env, {
        CAPILLARY_AUTH: "oauth",
        CAPILLARY_OAUTH_KEY: DEMO_CREDENTIALS.oauth.key,
        CAPILLARY_OAUTH_SECRET: DEMO_CREDENTIALS.oauth.secret,
        CAPILLARY_GROUP_IDS: manifest.groupIds.join(","),
        CAPILLARY_RATE_PER_SECOND: "200",
      });
    }
    const s3 = new S3Client({
      region: stack.region,
      endpoint: stack.s3Endpoint,
      forcePathStyle: true,
      credentials: stack.credentials,
    });
    const ddb = new DynamoDBClient({
      region: stack.region,
      endpoint: stack.dynamoEndpoint,
      credentials: stack.credentials,
    });
    await provision({ s3, ddb }, names);
    say(`created buckets ${names.exportsBucket}, ${names.reportsBucket} and table ${names.tableName}`);

    const result = await runPipeline({
      env,
      dispatcher: stack.dispatcher,
      ...(stack.capillary ? { capillary: { simulator: stack.capillary, states: [initial, current] } } : {}),
      exportsDir: exportsRoot,
      order,
      progress: say,
    });
    if (result.ingestFailures.length > 0) {
      for (const f of result.ingestFailures) console.error(`  ingestion failed: ${f.key}: ${f.error}`);
    }
    if (result.published.length === 0)
      fail("no report was published: no accepted Points or Redemption Summary rows");

    // 3. Show the latest period and where the reports are.
    const outDir = resolve(o.out);
    for (const rep of result.published) {
      const dir = join(outDir, `period=${rep.period}`);
      await mkdir(dir, { recursive: true });
      for (const f of [...rep.files, { key: rep.manifestKey }]) {
        const r = await s3.send(new GetObjectCommand({ Bucket: names.reportsBucket, Key: f.key }));
        await writeFile(
          join(dir, f.key.split("/").at(-1) ?? "file"),
          (await r.Body?.transformToString("utf8")) ?? "",
        );
      }
    }
    const latest = result.published.at(-1);
    if (!latest) fail("no report was published");
    const summaries = new Map<string, Record<string, string>[]>();
    for (const rep of result.published) {
      const text = await readFile(join(outDir, `period=${rep.period}`, "group_summary.json"), "utf8");
      summaries.set(rep.period, summaryJson.parse(JSON.parse(text)).rows);
    }
    const json = { rows: summaries.get(latest.period) ?? [] };
    console.log(`\nGroup summary, ${latest.period} (run ${latest.runId}):\n`);
    printTable(json.rows, [
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
    ]);
    console.log("\nReports (S3 key -> local copy):");
    for (const rep of result.published) {
      for (const f of rep.files) {
        console.log(
          `  s3://${names.reportsBucket}/${f.key}  (${f.rows} rows)\n    -> ${join(outDir, `period=${rep.period}`, f.key.split("/").at(-1) ?? "")}`,
        );
      }
      console.log(
        `  s3://${names.reportsBucket}/${rep.manifestKey}  (the period's manifest: the current run)`,
      );
    }
    console.log(`  s3://${names.reportsBucket}/reports/latest/manifest.json  (the newest period)`);
    if (o.exports === undefined && !capillaryUrl) {
      // The sample's figures were computed by the generator from the events it made: compare them all.
      const got = [...summaries.values()].flat();
      const want = sample.truth.groupSummary;
      const same =
        got.length === want.length && want.every((w, i) => JSON.stringify(w) === JSON.stringify(got[i]));
      console.log(
        same
          ? `\nChecked: all ${want.length} group rows x ${GROUP_SUMMARY_COLUMNS.length} columns equal the generator's independent figures.`
          : "\nMISMATCH: the reports differ from the generator's figures (see out/ and .sample/truth.json).",
      );
      if (!same) process.exitCode = 1;
    }
    say("done");

    if (o.keep) {
      keep = true;
      console.log(`\nThe stack stays up (Ctrl-C to stop):
  S3        ${stack.s3Endpoint}   (path-style; writes under exports/ are ingested)
  DynamoDB  ${stack.dynamoEndpoint}   table ${names.tableName}
${stack.capillaryUrl ? `  Capillary ${stack.capillaryUrl}   (simulator; OAuth key ${DEMO_CREDENTIALS.oauth.key})\n` : ""}
  AWS CLI:  export AWS_ACCESS_KEY_ID=${stack.credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${stack.credentials.secretAccessKey} AWS_REGION=${stack.region}
            aws --endpoint-url ${stack.s3Endpoint} s3 ls s3://${names.reportsBucket}/reports/ --recursive
            aws --endpoint-url ${stack.dynamoEndpoint} dynamodb scan --table-name ${names.tableName} --max-items 5
  SDK:      new S3Client({ endpoint: "${stack.s3Endpoint}", forcePathStyle: true, region: "${stack.region}" })
            new DynamoDBClient({ endpoint: "${stack.dynamoEndpoint}", region: "${stack.region}" })`);
      const stop = async () => {
        await stack.stop();
        process.exit(0);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    }
    s3.destroy();
    ddb.destroy();
  } finally {
    if (!keep) await stack.stop();
  }
}

/** Copy a flat directory of exports into a temp root under exports/ (the prefix that triggers ingestion). */
async function stageUnderExports(dir: string): Promise<string> {
  const { cp, mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const root = await mkdtemp(join(tmpdir(), "glr-demo-"));
  await cp(dir, join(root, "exports"), { recursive: true });
  return root;
}

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
