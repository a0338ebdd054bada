/**
 * The Athena path (issue 7) as a second, independent oracle: the e2e pipeline runs on the sample, then
 * the staged objects of the current files (per the ledger) are copied into a temp folder with the same
 * Hive layout, the ledger / memberships / group metas are snapshotted (infra/athena/snapshot.ts), and
 * infra/athena/tables.sql + group_summary.sql run on DuckDB. Every row and figure must equal the Lambda's
 * group_summary.json for every period.
 *
 * The one substitution (DuckDB has no CREATE EXTERNAL TABLE) is in infra/athena/duckdb.ts.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ATHENA_DIR, parseTables, runGroupSummaryOnDuckDb } from "../../infra/athena/duckdb.ts";
import { snapshotFiles } from "../../infra/athena/snapshot.ts";
import type { PipelineResult } from "../../infra/pipeline.ts";
import type { GeneratedSample } from "../../infra/sample/generate.ts";
import { LedgerStore } from "../../lib/adapters/ledger-store.ts";
import { createMembershipStore } from "../../lib/adapters/membership-store.ts";
import { currentFiles } from "../../lib/aggregate.ts";
import { GROUP_SUMMARY_COLUMNS } from "../../lib/domain/aggregate.ts";
import type { Membership } from "../../lib/domain/membership.ts";
import { runSampleOnStack, type SampleStackRun } from "../support/sample-stack.ts";
import { localClients } from "./helpers.ts";

describe("the Athena SQL on DuckDB equals the Lambda's group_summary", () => {
  const clients = localClients();
  const { s3, ddb } = clients;
  let run: SampleStackRun;
  let root: string;
  let names: SampleStackRun["names"];
  let sample: GeneratedSample;
  let result: PipelineResult;

  const text = async (bucket: string, key: string) => {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return r.Body?.transformToByteArray() ?? new Uint8Array();
  };

  beforeAll(async () => {
    run = await runSampleOnStack(clients, { seed: 7, months: ["2026-09", "2026-10"] });
    ({ names, sample, result } = run);
    root = join(run.dir, "s3");

    // The committed staged objects of the current files, in the same Hive layout.
    const ledger = await new LedgerStore(ddb, names.tableName).list();
    for (const f of currentFiles(ledger)) {
      for (const s of f.staged) {
        const path = join(root, ...s.key.split("/"));
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, await text(names.exportsBucket, s.key));
      }
    }
    const store = createMembershipStore(ddb, names.tableName);
    const memberships: Membership[] = [];
    for await (const m of store.listAllMemberships()) memberships.push(m);
    const files = snapshotFiles({
      ledger,
      memberships,
      groups: await store.listGroupMetas(),
      timeZone: "UTC",
    });
    for (const [rel, body] of Object.entries(files)) {
      const path = join(root, ...rel.split("/"));
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, body);
    }
  }, 120_000);

  afterAll(async () => {
    await run?.stop();
  });

  it("declares every staged dataset and snapshot table", async () => {
    const tables = parseTables(await readFile(join(ATHENA_DIR, "tables.sql"), "utf8"));
    expect(tables.map((t) => [t.name, t.partitioned])).toEqual([
      ["points", true],
      ["points_redemption_summary", true],
      ["members", true],
      ["rewards", true],
      ["ledger_files", false],
      ["memberships", false],
      ["group_metas", false],
      ["group_programs", false],
    ]);
  });

  it("computes every figure of every group and period as the Lambda published it", async () => {
    const rows = await runGroupSummaryOnDuckDb(root);
    expect(Object.keys(rows[0] ?? {})).toEqual([...GROUP_SUMMARY_COLUMNS]);
    const periods = result.published.map((p) => p.period);
    expect(periods).toEqual(sample.truth.months);
    expect([...new Set(rows.map((r) => r.period))]).toEqual(periods);
    let figures = 0;
    for (const rep of result.published) {
      const key = rep.files.find((f) => f.key.endsWith("/group_summary.json"))?.key ?? "";
      const body = Buffer.from(await text(names.reportsBucket, key)).toString("utf8");
      const lambda = (JSON.parse(body) as { rows: Record<string, string>[]; columns: string[] }).rows;
      const sql = rows.filter((r) => r.period === rep.period);
      expect(sql).toHaveLength(lambda.length);
      for (const [i, want] of lambda.entries()) {
        expect({ i, ...sql[i] }).toEqual({ i, ...want });
        figures += Object.values(want).filter((v) => v !== "" && v !== "0").length;
      }
    }
    expect(figures).toBeGreaterThan(100);
  }, 60_000);
});
