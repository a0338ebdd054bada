/**
 * The `group-reports` CLI in child processes against the local stack, and the process time zone:
 * the same sample is synced, ingested and aggregated twice, once by processes running with
 * TZ=America/Los_Angeles and once with TZ=Asia/Kolkata, each into its own buckets and table. Both sets of
 * reports must be identical and equal the generator's truth: the machine's TZ changes no figure.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import { provision } from "../../infra/provision.ts";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import { LOCAL_CREDENTIALS } from "../../infra/stack.ts";
import { main } from "../../lib/cli/main.ts";
import { localClients, uniqueName } from "./helpers.ts";

const credentials = { oauth: { key: "k", secret: "s" }, basic: { username: "u", password: "p" } };
const ZONES = ["America/Los_Angeles", "Asia/Kolkata"] as const;
const MONTHS = ["2026-09", "2026-10"];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe("group-reports CLI; the process time zone changes no figure", () => {
  const { stack, s3, dynamo } = localClients();
  let dir: string;
  let sample: GeneratedSample;
  let sim: CapillarySimulator;
  const sets = ZONES.map((tz) => ({
    tz,
    names: {
      exportsBucket: uniqueName("cli-exports"),
      reportsBucket: uniqueName("cli-reports"),
      tableName: uniqueName("cli-table"),
    },
  }));
  const envOf = (set: (typeof sets)[number]): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TZ: set.tz,
    AWS_REGION: stack.region,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    S3_ENDPOINT: stack.s3Endpoint,
    S3_FORCE_PATH_STYLE: "true",
    DYNAMODB_ENDPOINT: stack.dynamoEndpoint,
    EXPORTS_BUCKET: set.names.exportsBucket,
    REPORTS_BUCKET: set.names.reportsBucket,
    TABLE_NAME: set.names.tableName,
    CAPILLARY_BASE_URL: sim.url,
    CAPILLARY_AUTH: "oauth",
    CAPILLARY_OAUTH_KEY: credentials.oauth.key,
    CAPILLARY_OAUTH_SECRET: credentials.oauth.secret,
    CAPILLARY_GROUP_IDS: sample.manifest.groupIds.join(","),
    CAPILLARY_RATE_PER_SECOND: "500",
    POWERTOOLS_LOG_LEVEL: "ERROR",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  });
  /** The CLI as a user runs it: a child process (async, so the simulator in this process keeps serving). */
  const cli = (env: NodeJS.ProcessEnv, ...args: string[]) =>
    new Promise<Run>((resolve, reject) => {
      const p = spawn(process.execPath, ["bin/group-reports.mjs", ...args], { env, cwd: process.cwd() });
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
      });
      p.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      p.on("error", reject);
      p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  /** The same command in this process (TZ as the test runner's): cheaper than a child process. */
  const run = async (env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) }, env);
    return { code, stdout: out.map((l) => `${l}\n`).join(""), stderr: err.map((l) => `${l}\n`).join("") };
  };
  const ok = (r: Run) => {
    if (r.code !== 0) throw new Error(`exit ${r.code}\n${r.stderr}\n${r.stdout}`);
    return r;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-cli-"));
    sample = await buildSample({ outDir: dir, seed: 11, months: MONTHS });
    const [first, second] = sample.input.syncs;
    if (!first || !second) throw new Error("the sample has two syncs");
    sim = await startCapillarySimulator({ state: first.state, credentials });
    for (const set of sets) await provision({ s3, ddb: dynamo }, set.names);
    await Promise.all(sets.map(async (set) => ok(await cli(envOf(set), "sync"))));
    sim.setState(second.state);
    await Promise.all(sets.map(async (set) => ok(await cli(envOf(set), "sync"))));
    // In-process commands (main(), the function the bin runs) take AWS credentials from this process.
    process.env.AWS_ACCESS_KEY_ID = LOCAL_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = LOCAL_CREDENTIALS.secretAccessKey;
    const files = [...sample.manifest.files]
      .sort((a, b) => a.deliveryOrder - b.deliveryOrder)
      .map((f) => join(dir, ...f.key.split("/")));
    await Promise.all(sets.map(async (set) => ok(await cli(envOf(set), "ingest", ...files, "--aggregate"))));
  });

  afterAll(async () => {
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const get = async (set: (typeof sets)[number], period: string) => {
    const out = join(dir, `got-${set.tz.replace("/", "_")}-${period}`);
    const r = ok(await run(envOf(set), "reports", "get", "--period", period, "--out", out));
    expect(r.stdout).toContain("sha256 verified");
    const text = (name: string) => readFile(join(out, name), "utf8");
    return { out, text };
  };

  it("lists the published periods, the newest marked latest", async () => {
    for (const set of sets) {
      const r = ok(await (set === sets[0] ? cli : run)(envOf(set), "reports", "list"));
      const lines = r.stdout.trim().split("\n");
      expect(lines[0]).toMatch(/^period\s+run\s+generated\s+groups/);
      expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(MONTHS);
      expect(lines.at(-1)).toMatch(/latest$/);
    }
  });

  it("gives identical reports under both time zones, equal to the generator's truth", async () => {
    for (const period of MONTHS) {
      const [a, b] = await Promise.all(sets.map((s) => get(s, period)));
      if (!a || !b) throw new Error("two sets");
      for (const name of ["group_summary.csv", "group_members.csv", "unattributed_members.csv"]) {
        expect(await b.text(name), `${period} ${name}`).toBe(await a.text(name));
      }
      const rows = (JSON.parse(await a.text("group_summary.json")) as { rows: Record<string, string>[] })
        .rows;
      const want = sample.truth.groupSummary.filter((r) => r.period === period);
      expect(rows).toEqual(want);
      const html = await a.text("report.html");
      expect(html).toContain(`<span id="period">${period}</span>`);
      const manifest = JSON.parse(await a.text("manifest.json")) as {
        files: { name: string; rows: number }[];
        inputFiles: string[];
        membershipSyncedAt: string;
      };
      expect(manifest.files.map((f) => f.name).sort()).toEqual(
        [
          "data_quality.csv",
          "group_members.csv",
          "group_summary.csv",
          "group_summary.json",
          "report.html",
          "unattributed_members.csv",
        ].sort(),
      );
      expect(manifest.files.find((f) => f.name === "group_summary.csv")?.rows).toBe(want.length);
      expect(manifest.inputFiles.length).toBeGreaterThan(0);
      expect(manifest.membershipSyncedAt).not.toBe("");
    }
  });

  it("presigned links download the latest run's files", async () => {
    const set = sets[0];
    if (!set) throw new Error("no set");
    const r = ok(
      await run(
        envOf(set),
        "reports",
        "link",
        "--period",
        "latest",
        "--file",
        "group_summary.csv",
        "--expires",
        "10m",
      ),
    );
    const [name, url] = r.stdout.trim().split("\t");
    expect(name).toBe("group_summary.csv");
    expect(url).toContain("X-Amz-Expires=600");
    const res = await fetch(url ?? "");
    expect(res.status).toBe(200);
    const { text } = await get(set, "latest");
    // Byte for byte, BOM included (Response.text() would drop the BOM).
    const body = new TextDecoder("utf-8", { ignoreBOM: true }).decode(await res.arrayBuffer());
    expect(body).toBe(await text("group_summary.csv"));
  });

  it("aggregates a backfill range on demand, publishing a new run per period", async () => {
    const set = sets[1];
    if (!set) throw new Error("no set");
    // In this process (the runner's TZ): the figures must not move either.
    const before = (await get(set, "2026-10")).text;
    const r = ok(await run(envOf(set), "aggregate", "--from", "2026-09", "--to", "2026-10"));
    const lines = r.stdout.trim().split("\n");
    expect(lines.map((l) => l.split("\t")[0])).toEqual(MONTHS);
    expect(r.stderr).toContain("period 2026-10 (2/2)");
    const after = (await get(set, "2026-10")).text;
    for (const name of ["group_summary.csv", "group_members.csv", "unattributed_members.csv"])
      expect(await after(name), name).toBe(await before(name));
  });

  it("exits 2 with a clear message on bad input", async () => {
    const env = envOf(sets[0] ?? sets[1] ?? ({} as never));
    const unknown = join(dir, "orders.csv");
    await writeFile(unknown, "order_id,customer,amount\n1,2,3\n");
    const cases: [string[], RegExp][] = [
      [["aggregate", "--period", "2026-13"], /--period must be YYYY-MM/],
      [["aggregate", "--from", "2026-10", "--to", "2026-09"], /--from 2026-10 is after --to 2026-09/],
      [["reports", "get", "--period", "2019-01"], /no report published for 2019-01/],
      [["reports", "link", "--period", "latest", "--expires", "9d"], /between 1s and 7d/],
      [["ingest", join(dir, "no-such-file.csv")], /not a readable file/],
      [["frobnicate"], /unknown command "frobnicate"/],
      [["reports", "get", "--bogus"], /Unknown option '--bogus'/],
      [
        ["ingest", unknown],
        /orders\.csv\tREJECTED\tunknown header \(no template matches\): order_id, customer, amount\tread 1, accepted 0, rejected 1/,
      ],
    ];
    // In process (the same main() the bin runs), then two of them as real child processes for the exit code.
    for (const [args, msg] of cases) {
      const out: string[] = [];
      const code = await main(args, { out: (l) => out.push(l), err: (l) => out.push(l) }, env);
      expect({ args, code }).toEqual({ args, code: 2 });
      expect(out.join("\n")).toMatch(msg);
    }
    for (const [args, msg] of cases.slice(0, 1)) {
      const r = await cli(env, ...args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(msg);
    }
    // With the log level left unset, stdout carries the result lines only (no INFO log lines).
    const { POWERTOOLS_LOG_LEVEL: _, ...unset } = env;
    const plain = await cli(unset, "ingest", "test/fixtures/ingest/points.csv");
    expect(plain.code).toBe(0);
    expect(plain.stdout.trim().split("\n")).toEqual([
      expect.stringMatching(/^points\.csv\tCOMMITTED\tread /),
    ]);
    const noConfig = await cli({ PATH: process.env.PATH, HOME: process.env.HOME }, "reports", "list");
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toMatch(/EXPORTS_BUCKET is required/);
  });
});
