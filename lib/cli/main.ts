/**
 * `group-reports`: the command line for stakeholders and operators. It uses the same lib/ code and the
 * same configuration as the Lambda functions (EXPORTS_BUCKET, REPORTS_BUCKET, TABLE_NAME, ... and, for
 * the local stack, S3_ENDPOINT / DYNAMODB_ENDPOINT / S3_FORCE_PATH_STYLE), so it works against AWS or the
 * local stack alike. Readers always go through a manifest (a period's, or reports/latest/'s), so what
 * they get is one complete run. Progress goes to stderr, results to stdout; bad input exits 2, a failure 1.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { z } from "zod";
import {
  type AggregationRequest,
  LATEST_MANIFEST_KEY,
  periodManifestKey,
  type ReportManifest,
  runAggregation,
} from "../aggregate.ts";
import { ConfigError } from "../config.ts";
import { periodRange } from "../domain/periods.ts";
import { type IngestOutcome, ingestObject } from "../ingest.ts";
import { createRuntime, type Runtime } from "../runtime.ts";

export const USAGE = `usage: group-reports <command> [options]

  reports list                               periods with a published report (current run, groups, time)
  reports get --period P|latest [--out DIR]  download a period's files (sha256 checked) into DIR
  reports link --period P|latest [--expires 1h] [--file NAME]
                                             presigned download URLs (expiry up to 7d)
  aggregate [--period P]... | [--from P --to P]
                                             publish reports of the periods (default: every dirty period)
  ingest FILE... [--aggregate]               upload local export files under exports/cli/ and ingest them
  sync                                       sync groups and memberships from the Capillary API

Periods are YYYY-MM. Configuration comes from the environment, as for the Lambda functions:
EXPORTS_BUCKET, REPORTS_BUCKET, TABLE_NAME, REPORT_TIME_ZONE, AWS_REGION; for the local stack also
S3_ENDPOINT, DYNAMODB_ENDPOINT, S3_FORCE_PATH_STYLE=true (npm run stack prints them).`;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const PERIOD = /^\d{4}-(0[1-9]|1[0-2])$/;

export function parsePeriod(v: string | undefined, option: string, allowLatest = false): string {
  if (v === undefined) throw new UsageError(`${option} is required`);
  if (allowLatest && v === "latest") return v;
  if (!PERIOD.test(v))
    throw new UsageError(
      `${option} must be YYYY-MM${allowLatest ? " or latest" : ""}, got ${JSON.stringify(v)}`,
    );
  return v;
}

/** "90s", "15m", "1h", "7d" -> seconds, 1 s .. 7 days (the SigV4 presign limit). */
export function parseExpires(v: string): number {
  const m = /^(\d+)([smhd])$/.exec(v.trim());
  if (!m) throw new UsageError(`--expires must look like 30m, 1h or 7d, got ${JSON.stringify(v)}`);
  const n = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as "s" | "m" | "h" | "d"];
  if (n < 1 || n > 604_800) throw new UsageError("--expires must be between 1s and 7d");
  return n;
}

/** The aggregation request of `aggregate`'s options. */
export function aggregateRequest(o: { period?: string[]; from?: string; to?: string }): AggregationRequest {
  const named = o.period ?? [];
  if (named.length > 0 && (o.from !== undefined || o.to !== undefined))
    throw new UsageError("give --period or --from/--to, not both");
  if (named.length > 0) return { periods: [...new Set(named.map((p) => parsePeriod(p, "--period")))].sort() };
  if (o.from !== undefined || o.to !== undefined) {
    const from = parsePeriod(o.from, "--from");
    const to = parsePeriod(o.to, "--to");
    if (from > to) throw new UsageError(`--from ${from} is after --to ${to}`);
    return { periods: periodRange(from, to) };
  }
  return { dirty: true };
}

const manifestSchema = z.object({
  contract: z.string(),
  period: z.string(),
  runId: z.string(),
  generatedAt: z.string(),
  membershipSyncedAt: z.string(),
  files: z.array(
    z.object({
      key: z.string(),
      name: z.string().optional(),
      rows: z.number(),
      sha256: z.string(),
      bytes: z.number().optional(),
    }),
  ),
  inputFiles: z.array(z.string()),
});

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

async function readManifest(rt: Runtime, period: string): Promise<ReportManifest> {
  const key = period === "latest" ? LATEST_MANIFEST_KEY : periodManifestKey(period);
  const text = await rt.aggregate.objects.getText(rt.config.REPORTS_BUCKET, key);
  if (text === null)
    throw new UsageError(
      period === "latest" ? "no report has been published yet" : `no report published for ${period}`,
    );
  return manifestSchema.parse(JSON.parse(text)) as ReportManifest;
}

const fileName = (f: { key: string; name?: string }) => f.name ?? f.key.split("/").at(-1) ?? f.key;

async function reportsList(rt: Runtime, io: Io): Promise<void> {
  const s3 = rt.clients.s3;
  const bucket = rt.config.REPORTS_BUCKET;
  const periods: string[] = [];
  let token: string | undefined;
  do {
    const r = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: "reports/period=",
        Delimiter: "/",
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const p of r.CommonPrefixes ?? []) {
      const m = /^reports\/period=(\d{4}-\d{2})\/$/.exec(p.Prefix ?? "");
      if (m?.[1]) periods.push(m[1]);
    }
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  const latest = await rt.aggregate.objects.getText(bucket, LATEST_MANIFEST_KEY);
  const latestRun = latest ? (JSON.parse(latest) as { runId?: string }).runId : undefined;
  const rows: string[][] = [];
  for (const p of periods.sort()) {
    const text = await rt.aggregate.objects.getText(bucket, periodManifestKey(p));
    if (text === null) continue; // a run being written: not published yet
    const m = manifestSchema.parse(JSON.parse(text));
    const groups = m.files.find((f) => fileName(f) === "group_summary.csv")?.rows ?? 0;
    rows.push([
      m.period,
      m.runId,
      m.generatedAt,
      String(groups),
      String(m.inputFiles.length),
      m.membershipSyncedAt || "-",
      m.runId === latestRun ? "latest" : "",
    ]);
  }
  if (rows.length === 0) {
    io.err("no report has been published yet");
    return;
  }
  table(io, ["period", "run", "generated", "groups", "input files", "membership synced", ""], rows);
}

async function reportsGet(rt: Runtime, io: Io, period: string, outDir: string | undefined): Promise<void> {
  const m = await readManifest(rt, period);
  const dir = resolve(outDir ?? `reports-${m.period}`);
  await mkdir(dir, { recursive: true });
  for (const [i, f] of m.files.entries()) {
    io.err(`[${i + 1}/${m.files.length}] ${fileName(f)} (${f.rows} rows)`);
    const r = await rt.clients.s3.send(
      new GetObjectCommand({ Bucket: rt.config.REPORTS_BUCKET, Key: f.key }),
    );
    const bytes = await r.Body?.transformToByteArray();
    if (!bytes) throw new Error(`${f.key} has no body`);
    const sha = createHash("sha256").update(bytes).digest("hex");
    if (sha !== f.sha256) throw new Error(`${f.key}: sha256 ${sha} differs from the manifest's ${f.sha256}`);
    await writeFile(join(dir, fileName(f)), bytes);
  }
  await writeFile(join(dir, "manifest.json"), `${JSON.stringify(m, null, 1)}\n`);
  io.out(`${m.period} run ${m.runId}: ${m.files.length} files (sha256 verified) in ${dir}`);
}

async function reportsLink(
  rt: Runtime,
  io: Io,
  period: string,
  expires: number,
  only?: string,
): Promise<void> {
  const m = await readManifest(rt, period);
  const files = only === undefined ? m.files : m.files.filter((f) => fileName(f) === only);
  if (files.length === 0)
    throw new UsageError(`no file ${only} in ${m.period}: ${m.files.map(fileName).join(", ")}`);
  io.err(`${m.period} run ${m.runId}; links expire in ${expires} s`);
  for (const f of files) {
    const url = await getSignedUrl(
      rt.clients.s3,
      new GetObjectCommand({ Bucket: rt.config.REPORTS_BUCKET, Key: f.key }),
      { expiresIn: expires },
    );
    io.out(`${fileName(f)}\t${url}`);
  }
}

async function aggregate(rt: Runtime, io: Io, request: AggregationRequest): Promise<number> {
  io.err(
    "periods" in request ? `aggregating ${request.periods.join(", ")}` : "aggregating every dirty period",
  );
  const out = await runAggregation({ ...rt.aggregate, progress: (l) => io.err(`  ${l}`) }, request);
  if (out.status === "busy") {
    io.err("another aggregation is running (it re-checks dirty periods before it ends); try again later");
    return 1;
  }
  if (out.published.length === 0) io.out("nothing to publish (no dirty period, or no rows in the periods)");
  for (const p of out.published) io.out(`${p.period}\trun ${p.runId}\t${p.groups} groups\t${p.manifestKey}`);
  return 0;
}

async function ingest(rt: Runtime, io: Io, files: string[], thenAggregate: boolean): Promise<number> {
  if (files.length === 0) throw new UsageError("ingest needs at least one FILE");
  const sizes: number[] = [];
  for (const f of files) {
    const st = await stat(f).catch(() => null);
    if (!st?.isFile()) throw new UsageError(`${f}: not a readable file`);
    sizes.push(st.size);
  }
  const bucket = rt.config.EXPORTS_BUCKET;
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  const outcomes: IngestOutcome[] = [];
  let failed = 0;
  let refused = 0;
  for (const [i, f] of files.entries()) {
    const key = `exports/cli/${stamp}/${basename(f)}`;
    io.err(`[${i + 1}/${files.length}] ${basename(f)}: uploading ${sizes[i]} bytes`);
    const up = await new Upload({
      client: rt.clients.s3,
      params: { Bucket: bucket, Key: key, Body: createReadStream(f) },
    }).done();
    const eTag = (up.ETag ?? "").replaceAll('"', "");
    try {
      const o = await ingestObject(rt.ingest, {
        bucket,
        key,
        size: sizes[i] ?? 0,
        eTag,
        sequencer: Date.now().toString(16).toUpperCase().padStart(16, "0"),
        eventTime: new Date().toISOString(),
      });
      outcomes.push(o);
      if (!("rowsRead" in o)) io.out(`${basename(f)}\t${o.status}\t${o.reason}`);
      else {
        const counts = `read ${o.rowsRead}, accepted ${o.rowsAccepted}, rejected ${o.rowsRejected}`;
        const rejects = o.rowsRejected > 0 ? `\trejected rows: s3://${bucket}/rejects/${o.fileId}.csv` : "";
        io.out(
          o.status === "REJECTED"
            ? `${basename(f)}\tREJECTED\t${o.reason ?? ""}\t${counts}${rejects}`
            : `${basename(f)}\tCOMMITTED\t${counts}\tperiods ${o.periods.join(" ") || "-"}${rejects}`,
        );
        if (o.status === "REJECTED") refused++;
      }
    } catch (e) {
      failed++;
      io.err(`${basename(f)}: ingestion failed: ${(e as Error).message}`);
    }
  }
  await rt.aggregationSignal.afterIngest(outcomes);
  if (thenAggregate) {
    const code = await aggregate(rt, io, { dirty: true });
    if (code !== 0) return code;
  }
  // A file refused as a whole is bad input (2), after the other files were ingested (and aggregated).
  return failed > 0 ? 1 : refused > 0 ? 2 : 0;
}

async function sync(io: Io): Promise<number> {
  // The sync handler's own wiring (credentials, discovery, continuation), invoked as Lambda would.
  process.env.SYNC_CONTINUE ??= "schedule";
  const { handler } = await import("../../functions/sync-groups.ts");
  const { lambdaContext, scheduledEvent } = await import("../../infra/lambda-context.ts");
  io.err("syncing groups from the Capillary API");
  const r = await handler(scheduledEvent(), lambdaContext("group-reports-cli", 24 * 3600_000));
  io.out(
    `synced ${r.synced} groups, ${r.membershipsWritten} memberships written, ${r.exitsObserved} exits observed, ${r.failed.length} failed`,
  );
  return r.failed.length > 0 ? 1 : 0;
}

function table(io: Io, head: string[], rows: string[][]): void {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(w[i] ?? 0))
      .join("  ")
      .trimEnd();
  io.out(line(head));
  for (const r of rows) io.out(line(r));
}

/** Runs one command line; resolves to the exit code. */
export async function main(argv: string[], io: Io, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    const [cmd, ...rest] = argv;
    if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
      io.out(USAGE);
      return cmd === undefined ? 2 : 0;
    }
    const parse = (args: string[], options: NonNullable<ParseArgsConfig["options"]>, positionals = false) => {
      try {
        return parseArgs({ args, options, allowPositionals: positionals, strict: true });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    };
    const runtime = () => createRuntime(env);
    switch (cmd) {
      case "reports": {
        const [sub, ...args] = rest;
        if (sub === "list") {
          parse(args, {});
          await reportsList(runtime(), io);
          return 0;
        }
        if (sub === "get") {
          const { values } = parse(args, { period: { type: "string" }, out: { type: "string" } });
          const period = parsePeriod(values.period as string | undefined, "--period", true);
          await reportsGet(runtime(), io, period, values.out as string | undefined);
          return 0;
        }
        if (sub === "link") {
          const { values } = parse(args, {
            period: { type: "string" },
            expires: { type: "string", default: "1h" },
            file: { type: "string" },
          });
          const period = parsePeriod(values.period as string | undefined, "--period", true);
          const expires = parseExpires(values.expires as string);
          await reportsLink(runtime(), io, period, expires, values.file as string | undefined);
          return 0;
        }
        throw new UsageError(`unknown reports command ${JSON.stringify(sub ?? "")}: list, get or link`);
      }
      case "aggregate": {
        const { values } = parse(rest, {
          period: { type: "string", multiple: true },
          from: { type: "string" },
          to: { type: "string" },
        });
        const request = aggregateRequest(values as { period?: string[]; from?: string; to?: string });
        return await aggregate(runtime(), io, request);
      }
      case "ingest": {
        const { values, positionals } = parse(rest, { aggregate: { type: "boolean", default: false } }, true);
        return await ingest(runtime(), io, positionals, values.aggregate === true);
      }
      case "sync":
        parse(rest, {});
        return await sync(io);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`group-reports: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof ConfigError) {
      io.err(`group-reports: ${e.message}`);
      return 2;
    }
    io.err(`group-reports: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return 1;
  }
}
